"""The model-free name detector: intros, salutations, titles, sign-offs, gazetteer; and
the words it must leave alone (model names, "Hi there", "Dear Customer")."""

from __future__ import annotations

import json
import re

import pytest

from spanline.redactor.detectors import BUILTIN_DETECTORS, Scanner, builtin_detectors
from spanline.redactor.detectors.names import _UNICODE_SPACE
from spanline.redactor.engine import Redactor

SCANNER = Scanner(builtin_detectors(frozenset(BUILTIN_DETECTORS)))
PLAIN = Scanner(builtin_detectors(frozenset(BUILTIN_DETECTORS)), prefilter=False)


def names(text: str) -> list[str]:
    fast = SCANNER.scan(text)
    assert fast == PLAIN.scan(text), text  # the triggers (gazetteer literals included) are a superset
    return [text[s:e] for s, e, d in fast if d == "name"]


@pytest.mark.parametrize(
    "text,name",
    [
        ("Hi, my name is Jürgen Müller and I need help", "Jürgen Müller"),
        ("mein Name ist Katharina Schmitt", "Katharina Schmitt"),
        ("je m'appelle Élodie Martin", "Élodie Martin"),
        ("Hi Anna,\nthe report is late", "Anna"),
        ("Dear Mr. Whitfield, thank you", "Whitfield"),
        ("Sehr geehrte Frau Schneider,", "Schneider"),
        ("Dr. Okafor will call back", "Okafor"),
        ("Best regards,\nPeter Schmidt", "Peter Schmidt"),
        ("Mit freundlichen Grüßen\nKlaus Becker", "Klaus Becker"),
        ("Thanks,\\nMaria Lopez", "Maria Lopez"),  # a literal \n escape in a log line
        ("I spoke with Emily Watson yesterday", "Emily Watson"),
        ("I'm Laura and I want a refund", "Laura"),
    ],
)
def test_names_found(text: str, name: str) -> None:
    assert name in names(text)


@pytest.mark.parametrize(
    "text",
    [
        "Hi there, how are you?",
        "Dear Customer, your order shipped",
        "Hello World",
        "I am Happy to help",
        "This is Important",
        "switched from Claude Sonnet to Gemini Flash",
        "Thanks,\nThe Support Team",
        "meeting on Monday March 3",
        "New York and Berlin",
    ],
)
def test_not_names(text: str) -> None:
    assert names(text) == []


def test_name_in_chat_json_is_masked_and_json_stays_valid() -> None:
    doc = json.dumps([{"role": "user", "content": "Regards,\nPeter Schmidt"}])
    out, report = Redactor().redact_text(doc, "p", key="gen_ai.input.messages")
    assert json.loads(out)[0]["content"] == "Regards,\n<NAME>"
    assert report.by_detector() == {"name": 1}


@pytest.mark.parametrize(
    "text,name",
    [
        # (given names outside the gazetteer, so that only the rule under test can find them)
        ("my\u00a0name is Xavira Quenk", "Xavira Quenk"),  # inside the intro phrase
        ("my name is\u00a0Xavira Quenk", "Xavira Quenk"),  # between the intro and the name
        ("Mit\u2009freundlichen Grüßen\nOdalric Brannoc", "Odalric Brannoc"),
        ("Best\u3000regards,\nOdalric Brannoc", "Odalric Brannoc"),
        ("Hello\u00a0Ysolde, the parcel is late", "Ysolde"),
        ("Dear Mr.\u00a0Whitfield, thank you", "Whitfield"),
        ("Dr.\u00a0Okafor will call back", "Okafor"),
    ],
)
def test_no_break_and_other_unicode_spaces_do_not_hide_a_name(text: str, name: str) -> None:
    """Python's ``\\s`` matches U+00A0 and the other Unicode spaces, Hyperscan's only ASCII:
    the triggers spell them out, and the rules accept a no-break space before the name."""
    assert name in names(text)
    for doc in (json.dumps([{"content": text}]), json.dumps([{"content": text}], ensure_ascii=False)):
        out, _ = Redactor().redact_text(doc, "p", key="gen_ai.input.messages")
        assert name not in json.loads(out)[0]["content"], doc


def test_trigger_space_class_is_pythons_whitespace() -> None:
    """Every character Python's ``\\s`` matches on str, and no other, as the triggers spell it."""
    pattern = re.compile(_UNICODE_SPACE.encode())
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        assert bool(pattern.fullmatch(chr(c).encode())) == bool(re.match(r"\s", chr(c))), hex(c)
