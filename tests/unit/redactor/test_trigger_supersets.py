"""Narrowed triggers stay supersets of their detector's findings, on randomized inputs.

A trigger that skips what chat text is full of (dates, order numbers, clock times) must
still fire wherever its detector finds something: these tests generate look-alikes and
real findings around the cases each narrowing reasons about, run the detector alone
(``prefilter=False``) and require the trigger to fire on every text with a finding, both
as the scanner compiles it (text on its own) and as the prefilter does (a JSON document
and a protobuf string). Each generator is seeded and checks that it produced findings
and look-alikes the trigger skips, so a too-wide trigger also shows up.
"""

from __future__ import annotations

import ipaddress
import json
import random
import re

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from stdnum import iban as stdnum_iban

from spanline.redactor.checksums import iban_countries
from spanline.redactor.detectors.base import TextDetector
from spanline.redactor.detectors.contact import IbanDetector, Ipv6Detector
from spanline.redactor.detectors.names import _STRONG_INTROS, NameDetector
from spanline.redactor.detectors.numbers import NumberDetector
from spanline.redactor.detectors.phones import DEFAULT_REGIONS
from spanline.redactor.detectors.scanner import HYPERSCAN_AVAILABLE, Scanner
from spanline.redactor.engine import Redactor
from spanline.redactor.prefilter import Prefilter

pytestmark = pytest.mark.skipif(not HYPERSCAN_AVAILABLE, reason="triggers are Hyperscan patterns")

_NUMBER_KINDS = frozenset({"phone", "card", "ssn", "ip"})


def _check_superset(detector: TextDetector, texts: list[str]) -> tuple[int, int]:
    """(texts with a finding, texts without one the trigger skips); fails on a finding
    the trigger misses, in any of the three places a trigger is scanned."""
    fast = Scanner([detector])
    plain = Scanner([detector], prefilter=False)
    prefilter = Prefilter(
        fast.element_trigger_groups(),
        sensitive_keys=False,
        json_nesting=4,
        max_bytes=1 << 20,
        owners=fast.element_trigger_owners(),
        refined=fast.refined_triggers(),
    )
    found = skipped = 0
    rng = random.Random(len(texts))
    for text in texts:
        expected = plain.scan(text)
        if not expected:
            skipped += fast._triggered(text) == []
            continue
        found += 1
        assert fast.scan(text) == expected, text
        assert not prefilter.clean_text(json.dumps([text], ensure_ascii=False)), text
        kv = KeyValue(key="k", value=AnyValue(string_value=text))
        assert prefilter.flag_elements([kv.SerializeToString()], set(), not_keyvalues=()) != set(), text
        # located passes look again only near the element triggers' matches
        doc = json.dumps({"pad": "x" * rng.randrange(300), "v": text}, ensure_ascii=False).encode()
        opening = doc.rindex(b'"v": "') + 5
        located = prefilter.locate_in_text(doc)
        if b"\\" not in doc[opening:]:  # (escaped literals are decoded and scanned whole)
            assert located is not None and any(end > opening for end, _ in located), text
        assert 0 in (fast.flag_texts(["x" * rng.randrange(300), text]) or {}).get(1, ()), text
    return found, skipped


def _luhn_complete(rng: random.Random, n: int) -> str:
    body = [rng.choice("3456")] + [rng.choice("0123456789") for _ in range(n - 2)]
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return "".join(body) + str((10 - total % 10) % 10)


def _date(rng: random.Random) -> str:
    sep = rng.choice("-/.")
    year = rng.choice(["19", "20", "21", "18"]) + f"{rng.randrange(100):02d}"
    day, month = (f"{rng.randrange(1, 32):0{rng.choice((1, 2))}d}" for _ in range(2))
    return sep.join((year, month, day) if rng.random() < 0.5 else (day, month, year))


def _group(rng: random.Random) -> str:
    n = rng.choice((1, 2, 2, 3, 3, 4, 4, 5, 6, 7, 8, 8, 9, 10, 11, 12, 16))
    if n >= 12 and rng.random() < 0.5:
        return _luhn_complete(rng, n)
    first = rng.choice("0123456789") if rng.random() < 0.5 else rng.choice("01")
    return first + "".join(rng.choice("0123456789") for _ in range(n - 1))


def _date_like(rng: random.Random) -> str:
    """Three short groups with one separator: dates, and the near-dates around them."""
    sep = rng.choice("-/.")
    groups = [
        "".join(rng.choice("0123456789") for _ in range(rng.choice((1, 2, 2, 3, 4, 5)))) for _ in range(3)
    ]
    if rng.random() < 0.5:
        groups[rng.choice((0, 2))] = rng.choice(["19", "20"]) + f"{rng.randrange(100):02d}"
    return sep.join(groups)


def _digit_run(rng: random.Random) -> str:
    """Digit groups and dates joined by the separators _CANDIDATE reads (and some it does not)."""
    kinds = (_date, _date_like, _group, _group)
    tokens = [rng.choice(kinds)(rng) for _ in range(rng.choice((1, 1, 2, 2, 3, 4)))]
    seps = [" ", "-", ".", "/", " - ", "(", ")", ") ", "\u00a0", "  ", "-(", "/ ", ", ", ":", "--"]
    out = tokens[0]
    for token in tokens[1:]:
        out += rng.choice(seps) + token
    return rng.choice(["", "", "+", "(", "(+", "00"]) + out


def _spread_digits(rng: random.Random) -> str:
    """A phone number spread out by the longest separator runs _CANDIDATE reads (three
    characters, no-break spaces two bytes each): the widest a digit run gets in bytes, where
    a refined match starts furthest before, and ends furthest after, a coarse one."""
    seps = ["\u00a0\u00a0\u00a0", " - ", "\u00a0-\u00a0", ") (", "-", " "]
    digits = rng.choice(["0", "+4", "(+4", "00"]) + "".join(
        rng.choice("0123456789") for _ in range(rng.randrange(6, 11))
    )
    return rng.choice(["call ", "tel ", ""]) + "".join(d + rng.choice(seps) for d in digits[:-1]) + digits[-1]


def _number_text(rng: random.Random) -> str:
    before = rng.choice(
        ["", "call ", "tel: ", "SSN ", "social security ", "phone number ", "Order #", "order ", "mobile ",
         "x", "\\n", "on ", "fax\u00a0", "invoice ", "(", "since ", "_", "v", "a-"]
    )  # fmt: skip
    after = rng.choice(["", ".", " ext 12", " x5", "abc", " tomorrow", "1", ")", ":30", "\u00e9"])
    return before + _digit_run(rng) + after


def _ssn_text(rng: random.Random) -> str:
    """9 digits at up to ~45 characters (any width in UTF-8) after an SSN context word."""
    word = rng.choice(["SSN", "ssn:", "Social Security number", "SOCIAL SEC. no", "my SsN is", "social  sec"])
    filler = "".join(rng.choice("ab ,.:#\u00e9\u4e2d\U0001f600\n") for _ in range(rng.randrange(46)))
    return f"{word}{filler}{rng.randrange(10)}{rng.randrange(10**8):08d}{rng.choice(['', '.', ' x', '0'])}"


@pytest.mark.parametrize("regions", [DEFAULT_REGIONS, ("DE", "AT", "CH"), ("US",), ("IT", "ES"), ("RU",)])
def test_number_trigger_fires_wherever_the_detector_finds(regions: tuple[str, ...]) -> None:
    """Dates alone and lone 8-digit groups are skipped, every digit run around them with a
    finding still fires (a fourth group after a date, a leading 0 or 1, a '+' before it)."""
    rng = random.Random(f"number-trigger-{regions}")
    texts = [_number_text(rng) for _ in range(6000)]
    # lone 8- and 9-digit groups after a phone word: only some leading digits can be a phone number
    texts += [f"call {rng.randrange(10)}{rng.randrange(10**7):0{rng.choice((7, 8))}d}" for _ in range(3000)]
    texts += [_ssn_text(rng) for _ in range(3000)]
    texts += [_spread_digits(rng) for _ in range(3000)]
    texts += ["since 2024-03-15.", "Order #24531763 shipped", "on 15.03.2024 at noon", "due 03/15/2024"]
    found, skipped = _check_superset(NumberDetector(_NUMBER_KINDS, regions), texts)
    assert found > 1000 and skipped > 100, (found, skipped)


def test_number_trigger_skips_dates_and_order_numbers() -> None:
    scanner = Scanner([NumberDetector(_NUMBER_KINDS)])
    for text in ("since 2024-03-15.", "Order #24531763 shipped", "on 15.03.2024, 3/15/2024 or 2024/3/5"):
        assert scanner._triggered(text) == [], text
    for text in ("2024-03-15 0301234567", "Order #0301234567", "+4930123456", "15.03.2024-5551234567"):
        assert scanner._triggered(text) == [0], text


def _ipv6_text(rng: random.Random) -> str:
    """Addresses in every form ipaddress accepts, and colon runs that are none."""
    kind = rng.randrange(4)
    if kind == 0:  # a real address: zero runs compress to "::"
        groups = [0 if rng.random() < 0.4 else rng.randrange(1 << rng.choice((4, 8, 16))) for _ in range(8)]
        address = ipaddress.IPv6Address(b"".join(g.to_bytes(2, "big") for g in groups))
        run = rng.choice([address.compressed, address.exploded, address.compressed.upper()])
    elif kind == 1:  # IPv4-mapped, or 6 groups and a dotted quad
        quad = ".".join(str(rng.randrange(256)) for _ in range(4))
        run = rng.choice(["::ffff:", "::", "1:2:3:4:5:6:", "0:0:0:0:0:ffff:", "64:ff9b::"]) + quad
    else:  # times, MAC-like and ratio runs: hex groups of any length joined by colons
        n = rng.choice((2, 3, 3, 4, 6, 7, 8, 9))
        run = ":".join(
            "".join(rng.choice("0123456789abcdefABCDEF") for _ in range(rng.randrange(5))) for _ in range(n)
        )
    before = rng.choice(["", "at ", "[", "x", ":", "host=", "_", ". "])
    after = rng.choice(["", ":", "]:8080", " down", ".", "g", "%eth0", ":1"])
    return before + run + after


def test_ipv6_trigger_fires_wherever_the_detector_finds() -> None:
    rng = random.Random("ipv6-trigger")
    texts = [_ipv6_text(rng) for _ in range(8000)] + ["at 10:45:12", "ratio 16:9:4"]
    found, skipped = _check_superset(Ipv6Detector(), texts)
    assert found > 1500 and skipped > 1000, (found, skipped)


_REDACTORS = (Redactor(), Redactor(fast_paths=False))


@pytest.mark.parametrize(
    "key",
    ["ssn", "customer.ssn", "patient_SSN", "SSN number on file", "ssn_" + "x" * 30, "ssn_" + "\u00e9" * 33,
     "social security no", "Social_Security", "ssn_" + "x" * 40, "pesel"],
)  # fmt: skip
def test_nine_digits_under_an_ssn_key_redact_as_the_walk_does(key: str) -> None:
    """The SSN context may be the key above the value ("key: value", see the engine's key
    context): the context trigger spans the key's tail and the framing after it."""
    fast, reference = _REDACTORS
    rng = random.Random(key)
    for _ in range(20):
        value = f"{rng.randrange(9)}{rng.randrange(10**8):08d}"
        doc = json.dumps({"a": [{key: value, "n": 1}]})
        assert fast.redact_text(doc, "p") == reference.redact_text(doc, "p"), doc
        td = TracesData()
        span = td.resource_spans.add().scope_spans.add().spans.add(name="s")
        span.attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))
        span.attributes.append(KeyValue(key="doc", value=AnyValue(string_value=doc)))
        payload = td.SerializeToString()
        assert fast.redact_payload(payload, "traces", "p") == reference.redact_payload(payload, "traces", "p")


def _iban_text(rng: random.Random) -> str:
    """Valid IBANs of every registered country in any case and grouping, and hex ids."""
    if rng.random() < 0.4:
        run = rng.choice(["call_", "chatcmpl-", "toolu_", "msg_", ""]) + "".join(
            rng.choice("0123456789abcdef") for _ in range(rng.randrange(12, 30))
        )
        return rng.choice(["", "id ", "-"]) + run
    country = rng.choice(iban_countries())
    layout = stdnum_iban._ibandb.info(country + "00")[0][1]["bban"]
    alphabet = {
        "n": "0123456789",
        "a": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "c": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    }
    bban = "".join(
        rng.choice(alphabet[kind])
        for count, kind in re.findall(r"(\d+)!([nac])", layout)
        for _ in range(int(count))
    )
    value = country + stdnum_iban.calc_check_digits(country + "00" + bban) + bban
    value = rng.choice([value, value.lower(), value.title()])
    if rng.random() < 0.5:
        value = rng.choice([" ", "-"]).join(value[i : i + 4] for i in range(0, len(value), 4))
    return (
        rng.choice(["", "x ", "_", "-", "IBAN:", "\u00e9", "\\n"])
        + value
        + rng.choice(["", ".", " and", "x"])
    )


def test_iban_trigger_fires_wherever_the_detector_finds() -> None:
    """Hex ids opening with two letters and two digits fire only for registered countries."""
    rng = random.Random("iban-trigger")
    found, skipped = _check_superset(IbanDetector(), [_iban_text(rng) for _ in range(6000)])
    assert found > 2000 and skipped > 500, (found, skipped)


def _intro_text(rng: random.Random) -> str:
    """A strong intro phrase spelt every way re.IGNORECASE reads it, then a name (mostly not a
    gazetteer one, whose own trigger would fire), a lower-case word, a number or nothing,
    after any gap the rule allows."""
    folds = {"s": "\u017f", "k": "\u212a", "i": "\u0131", "I": "\u0130"}
    phrase = "".join(
        folds.get(c, c) if rng.random() < 0.1 else (c.upper() if rng.random() < 0.3 else c)
        for c in rng.choice(_STRONG_INTROS)
    ).replace(" ", rng.choice([" ", "  ", "\t", "\u00a0", "\n"]))
    gap = rng.choice(["", " ", "  ", "\t", "\u00a0", " \u00a0", "\n", ", "])
    after = rng.choice(
        ["Xavrin Qoltz", "\u00c4vra M\u00fcllrich", "\u0141ysander Nowak", "xavrin", "on +44 20 7946 0958",
         "Zo\u00ebthe", "XAVRIN", "X", "O'Qoltz", "", "Customer", "Vyra-Jenn Watson", "John Smith"]
    )  # fmt: skip
    return rng.choice(["", "Hi, ", "x", "_", "\\n"]) + phrase + gap + after + rng.choice(["", ".", " here"])


def test_intro_trigger_fires_wherever_the_name_rule_finds() -> None:
    rng = random.Random("intro-trigger")
    found, skipped = _check_superset(NameDetector(), [_intro_text(rng) for _ in range(5000)])
    assert found > 1000 and skipped > 300, (found, skipped)
