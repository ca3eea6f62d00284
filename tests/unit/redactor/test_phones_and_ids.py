"""Phone numbers (libphonenumber) and national identifiers (stdnum): formats and locales,
near misses, JSON escapes around the value, and the policy's phone regions."""

from __future__ import annotations

import json
import random

import pytest

from spanline.redactor.checksums import iban_valid, luhn_valid
from spanline.redactor.detectors import BUILTIN_DETECTORS, Scanner, builtin_detectors, phones
from spanline.redactor.detectors.phones import check, normalise
from spanline.redactor.engine import Redactor
from spanline.redactor.policy import parse_policy

SCANNER = Scanner(builtin_detectors(frozenset(BUILTIN_DETECTORS)))
PLAIN = Scanner(builtin_detectors(frozenset(BUILTIN_DETECTORS)), prefilter=False)
REDACTOR = Redactor()


def hits(text: str) -> list[tuple[str, str]]:
    fast = [(text[s:e], d) for s, e, d in SCANNER.scan(text)]
    assert fast == [(text[s:e], d) for s, e, d in PLAIN.scan(text)]  # prefilter is a superset
    return fast


@pytest.mark.parametrize(
    "text,value",
    [
        # en_US
        ("Call me on (212) 555-0199 after 5", "(212) 555-0199"),
        ("my cell is 415.555.2671", "415.555.2671"),
        ("reach me at +1 415 555 2671", "+1 415 555 2671"),
        # en_GB
        ("ring 020 7946 0958 tomorrow", "020 7946 0958"),
        ("mobile: 07911 123456", "07911 123456"),
        ("+44 7911 123456 is my number", "+44 7911 123456"),
        # de_DE
        ("Rufen Sie mich unter 030 12345678 an", "030 12345678"),
        ("Handy: 0151-12345678", "0151-12345678"),
        ("Tel. 089/12 34 56", "089/12 34 56"),
        ("Telefon: +49 (0)30 12345678", "+49 (0)30 12345678"),
        ("unter 0049 30 1234567 erreichbar", "0049 30 1234567"),
        # fr_FR
        ("appelez le 06 12 34 56 78", "06 12 34 56 78"),
        ("Tél : +33 1 23 45 67 89", "+33 1 23 45 67 89"),
        # a national number valid in a default region needs no context word
        ("details: 089123456 thanks", "089123456"),
    ],
)
def test_phone_national_and_international_formats(text: str, value: str) -> None:
    assert (value, "phone") in hits(text)


@pytest.mark.parametrize(
    "text",
    [
        "phone order #12345678 shipped",  # an order number next to "phone"
        "about your phone: order no. 48213377 was refunded",
        "invoice 4155552671 is overdue",
        "call 12345",  # too short
        "build 2024.03.15.1234",
        "version 10.2.3.4567",
        "released on 2024-03-15",
        "we sold 1 234 567 units",
        "id 301234567 in the batch",  # valid as a German number only if written with the trunk 0
    ],
)
def test_phone_near_misses(text: str) -> None:
    assert not [d for _, d in hits(text) if d == "phone"], hits(text)


@pytest.mark.parametrize(
    "raw",
    [
        "Tel:\\n0171 1234567",  # repr()'d log line: a literal backslash-n before the number
        "line one\\r\\n+49 171 1234567",
        "cols\\t030 12345678\\tend",
    ],
)
def test_phone_after_literal_escapes(raw: str) -> None:
    out, report = REDACTOR.redact_text(raw, "")
    assert report.by_detector().get("phone") == 1, out
    assert "1234567" not in out and "12345678" not in out


def test_phone_inside_json_escapes() -> None:
    doc = json.dumps({"role": "user", "content": "Ruf an:\n030 12345678\n(danke)"})
    out, report = REDACTOR.redact_text(doc, "", key="gen_ai.input.messages")
    assert "12345678" not in out and report.by_detector() == {"phone": 1}
    assert json.loads(out)["content"] == "Ruf an:\n<PHONE>\n(danke)"


def test_phone_regions_come_from_the_policy() -> None:
    us_only = Redactor(parse_policy({"phone_regions": ["US"]}))
    text = "details: 089123456 thanks"
    assert us_only.redact_text(text, "")[0] == text  # not a US number, no context word
    assert REDACTOR.redact_text(text, "")[0] == "details: <PHONE> thanks"
    assert (
        Redactor(parse_policy({"projects": {"m": {"phone_regions": ["de"]}}})).redact_text(text, "m")[0]
        != text
    )


def test_unknown_phone_region_is_refused() -> None:
    from spanline.redactor.errors import PolicyError

    with pytest.raises(PolicyError, match="unknown phone region"):
        parse_policy({"phone_regions": ["XX"]})


def test_phone_check_and_normalise() -> None:
    assert check("0301234567", False) == (True, True)
    assert check("301234567", False)[0] is False  # DE/FR readings need the trunk prefix
    assert normalise("030 1234567") == normalise("+49 30 1234567") == "+49301234567"
    assert normalise("+49 (0)30 1234567") == "+49301234567"


@pytest.mark.parametrize(
    "text,value,detector",
    [
        ("NI number: AB 12 34 56 C", "AB 12 34 56 C", "uk_nino"),
        ("nino=JG103759A;", "JG103759A", "uk_nino"),
        ("Steuer-ID: 36574261809", "36574261809", "de_idnr"),
        ("meine IdNr 36 574 261 809", "36 574 261 809", "de_idnr"),
        ("36 574 261 809 (official grouping, no context word)", "36 574 261 809", "de_idnr"),
        ("numéro de sécurité sociale 2 95 10 99 126 111 93", "2 95 10 99 126 111 93", "fr_nir"),
        ("NIR:295109912611193", "295109912611193", "fr_nir"),
        ("DNI 54362315K", "54362315K", "es_dni"),
        ("NIE X2482300W", "X2482300W", "es_dni"),
        ("CF: RCCMNL83S18D969H", "RCCMNL83S18D969H", "it_fiscal_code"),
        ("mijn BSN is 111222333", "111222333", "nl_bsn"),
        ("burgerservicenummer: 1112.22.333", "1112.22.333", "nl_bsn"),
        ("PESEL 44051401359", "44051401359", "pl_pesel"),
        ("personnummer 880320-0016", "880320-0016", "se_personnummer"),
        ("born 19880320-0016 in Malmö", "19880320-0016", "se_personnummer"),
        ("SSN 078-05-1120", "078-05-1120", "ssn"),
    ],
)
def test_national_id_positive(text: str, value: str, detector: str) -> None:
    assert (value, detector) in hits(text)


@pytest.mark.parametrize(
    "text,detector",
    [
        ("NI number: BG 12 34 56 C", "uk_nino"),  # administrative prefix, never allocated
        ("Steuer-ID: 36574261808", "de_idnr"),  # wrong check digit
        ("ref 36574261809", "de_idnr"),  # 11 digits without a context word
        ("NIR 2 95 10 99 126 111 94", "fr_nir"),  # wrong key
        ("DNI 54362315A", "es_dni"),  # wrong letter
        ("CF: RCCMNL83S18D969A", "it_fiscal_code"),  # wrong check character
        ("mijn BSN is 111222334", "nl_bsn"),  # fails the 11-proof
        ("order 111222333 shipped", "nl_bsn"),  # valid 11-proof, no context
        ("PESEL 44051401358", "pl_pesel"),  # wrong check digit
        ("tracking 44051401359", "pl_pesel"),  # no context
        ("personnummer 880320-0017", "se_personnummer"),  # Luhn fails
        ("SSN 000-12-3456", "ssn"),  # area 000 is never issued
    ],
)
def test_national_id_near_misses(text: str, detector: str) -> None:
    assert detector not in [d for _, d in hits(text)], hits(text)


def test_national_ids_in_json_escaped_text() -> None:
    doc = json.dumps({"tool": "kyc", "args": '{"pesel": "44051401359", "note": "BSN:\\n111222333"}'})
    out, report = REDACTOR.redact_text(doc, "", key="gen_ai.tool.call.arguments")
    assert "44051401359" not in out and "111222333" not in out
    assert report.by_detector() == {"pl_pesel": 1, "nl_bsn": 1}


def test_checksums_through_stdnum() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert not luhn_valid("41111111111111x1")
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST12345698765433")
    assert not iban_valid("GB82WEST1234569876543")  # wrong length for GB


def test_length_screen_before_libphonenumber_changes_no_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    """Digits the screen rejects without parsing are exactly those parsing finds neither valid
    nor possible (order and tracking numbers), for several region lists."""
    rng = random.Random(7)
    numbers = [
        rng.choice(["", "0", "1", "44", "49", "33", "00", "01", "011"])
        + "".join(rng.choice("0123456789") for _ in range(rng.randrange(6, 14)))
        for _ in range(400)
    ]
    region_lists = [("US", "GB", "DE", "FR"), ("DE", "AT", "CH"), ("IN", "NL", "IT", "MX", "AR")]
    screened = {}
    for regions in region_lists:
        for digits in numbers:
            phones.check.cache_clear()
            screened[digits, regions] = phones.check(digits, False, regions)
    monkeypatch.setattr(phones, "_cannot_be_possible", lambda digits, region: False)
    for (digits, regions), verdict in screened.items():
        phones.check.cache_clear()
        assert phones.check(digits, False, regions) == verdict, (digits, regions)
    phones.check.cache_clear()
