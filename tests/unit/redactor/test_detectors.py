"""Detectors: positives, negatives, checksum failures, and the prefilter's superset contract."""

from __future__ import annotations

import pytest

from spanline.redactor.checksums import iban_valid, luhn_valid
from spanline.redactor.detectors import BUILTIN_DETECTORS, Scanner, builtin_detectors
from spanline.redactor.detectors.scanner import HYPERSCAN_AVAILABLE

ALL = frozenset(BUILTIN_DETECTORS)
SCANNER = Scanner(builtin_detectors(ALL))
PLAIN_SCANNER = Scanner(builtin_detectors(ALL), prefilter=False)


def found(text: str) -> list[tuple[str, str]]:
    return [(text[s:e], d) for s, e, d in SCANNER.scan(text)]


def assert_detects(text: str, value: str, detector: str) -> None:
    hits = found(text)
    assert (value, detector) in hits, hits


def assert_clean(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize(
    "text,value",
    [
        ("mail john.doe@example.com now", "john.doe@example.com"),
        ("<Anna_B+tag@mail.example.co.uk>", "Anna_B+tag@mail.example.co.uk"),
        ("josé.müller@exämple.de", "josé.müller@exämple.de"),
        ("ops@[10.0.0.1]", "ops@[10.0.0.1]"),
    ],
)
def test_email_positive(text: str, value: str) -> None:
    assert_detects(text, value, "email")


@pytest.mark.parametrize("text", ["follow @spanline on social", "a@b", "user@localhost", "price @ 5 dollars"])
def test_email_negative(text: str) -> None:
    assert not [d for _, d in found(text) if d == "email"]


@pytest.mark.parametrize(
    "value",
    [
        "+14155552671",
        "+1 (415) 555-2671",
        "+44 20 7946 0958",
        "+33 1 23 45 67 89",
        "+49 30 1234567",
        "+41 (0)44 624 65 68",
        "0049 30 1234567",
        "(415) 555-2671",
        "415-555-2671",
        "415.555.2671",
        "415-555-2671x123",
        "001-415-555-2671",
        "020 7946 0958",
        "07700 900123",
        "06-12345678",
        "4155552671",
    ],
)
def test_phone_positive(value: str) -> None:
    assert_detects(f"reach us at {value} today", value, "phone")


@pytest.mark.parametrize(
    "text",
    [
        "released on 2024-03-15 at 10:45:12",
        "version 1.2.3 and 10.15.7",
        "pi is 3.14159265358979",
        "sold 1 234 567 units, 12.500.000 in total",
        "ts 1718000000 and 1718000000123 ms",
        "between 2019 2020 it grew",
        "order #12345 costs $1,299.00",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
    ],
)
def test_numbers_negative(text: str) -> None:
    assert_clean(text)


def test_phone_context_relaxes_rules() -> None:
    assert_detects("call me: 1234567", "1234567", "phone")
    assert_clean("item 1234567 in stock")


@pytest.mark.parametrize(
    "value",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5500 0000 0000 0004",
        "3782 822463 10005",
        "6011111111111117",
        "3530111333300000",
        "2223000048400011",
        "4222222222222",
    ],
)
def test_card_positive(value: str) -> None:
    assert_detects(f"card {value} exp 12/27", value, "card")


def test_card_luhn_failure_is_not_a_card() -> None:
    assert not luhn_valid("4111111111111112")
    assert "card" not in [d for _, d in found("card 4111 1111 1111 1112")]
    assert "card" not in [d for _, d in found("card 4111111111111112")]


def test_card_needs_issuer_prefix() -> None:
    # Luhn-valid, but no card network starts with 1 at this length (a ms timestamp shape).
    ts = next(f"171800000012{d}" for d in "0123456789" if luhn_valid(f"171800000012{d}"))
    assert "card" not in [d for _, d in found(f"ts {ts}")]


@pytest.mark.parametrize(
    "value",
    [
        "GB82WEST12345698765432",
        "GB82 WEST 1234 5698 7654 32",
        "DE89 3704 0044 0532 0130 00",
        "fr1420041010050500013m02606",
    ],
)
def test_iban_positive(value: str) -> None:
    assert_detects(f"pay to {value} please", value, "iban")


def test_iban_mod97_failure() -> None:
    assert not iban_valid("GB82WEST12345698765433")
    assert_clean("pay to GB82WEST12345698765433 please")
    assert not iban_valid("XX82WEST12345698765432")  # unknown country
    assert not iban_valid("GB82WEST1234569876543")  # wrong length


def test_iban_does_not_swallow_next_word() -> None:
    assert found("IBAN GB82 WEST 1234 5698 7654 32 and more") == [("GB82 WEST 1234 5698 7654 32", "iban")]


@pytest.mark.parametrize(
    "value",
    ["192.168.1.10", "8.8.8.8", "2001:db8::1", "fe80::1ff:fe23:4567:890a", "::ffff:192.0.2.128", "::1"],
)
def test_ip_positive(value: str) -> None:
    assert_detects(f"host {value} is down", value, "ip")


@pytest.mark.parametrize(
    "text", ["version 300.1.2.4", "at 10:30:00 today", "std::vector and Foo::Bar", "Note: fine"]
)
def test_ip_negative(text: str) -> None:
    assert "ip" not in [d for _, d in found(text)]


def test_ipv6_with_trailing_colon_and_port_v4() -> None:
    assert_detects("link fe80::1: down", "fe80::1", "ip")
    assert_detects("db 10.0.0.5:5432 up", "10.0.0.5", "ip")


def test_ssn() -> None:
    assert_detects("ssn 123-45-6789.", "123-45-6789", "ssn")
    assert_detects("SSN: 123456789", "123456789", "ssn")
    for bad in ("000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000"):
        assert "ssn" not in [d for _, d in found(f"ssn {bad}")], bad


SECRETS = [
    ("openai_key", "sk-proj-Ab3dEfGh1jKlMnOpQrStUvWxYz0123456789AbCd"),
    ("openai_key", "sk-Ab3dEfGh1jKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKl"),
    ("anthropic_key", "sk-ant-api03-Ab3dEfGh1jKlMnOpQrStUvWxYz0123456789_AbCdEf-GhIjKlMnOp"),
    ("aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_access_key", "ASIAY34FZKBOKMUTVV7A"),
    ("github_token", "ghp_1234567890abcdefghijABCDEFGHIJ123456"),
    ("github_token", "gho_1234567890abcdefghijABCDEFGHIJ123456"),
    (
        "github_token",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789abcdefghij",
    ),
    ("gitlab_token", "glpat-Ab3dEfGh1jKlMnOpQrSt"),
    ("slack_token", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
    ("slack_token", "xoxp-123456789012-123456789012-123456789012-abcdef0123456789abcdef0123456789"),
    ("google_api_key", "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"),
    (
        "jwt",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    ),
]


@pytest.mark.parametrize("detector,value", SECRETS)
def test_prefixed_secrets(detector: str, value: str) -> None:
    assert_detects(f"here it is {value} ok", value, detector)


def test_private_key_block() -> None:
    pem = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nAAAA==\n"
        "-----END OPENSSH PRIVATE KEY-----"
    )
    assert_detects(f"key:\n{pem}\nthanks", pem, "private_key")
    truncated = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7"
    assert_detects(f"oops {truncated}", truncated, "private_key")
    assert_clean("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----")


def test_aws_secret_key_needs_context() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert_detects(f"aws secret is {secret}", secret, "aws_secret_key")
    assert_detects(f"AWS_SECRET_ACCESS_KEY={secret}", secret, "aws_secret_key")
    assert "aws_secret_key" not in [d for _, d in found(f"checksum {secret}")]


@pytest.mark.parametrize(
    "text,value",
    [
        ("Authorization: Bearer abc.DEF-123456", "abc.DEF-123456"),
        ('"authorization": "Basic dXNlcjpwYXNzd29yZA=="', "dXNlcjpwYXNzd29yZA=="),
        ("curl -H 'Authorization: token 0123456789abcdef'", "0123456789abcdef"),
        ("bearer Zm9vYmFyYmF6cXV4", "Zm9vYmFyYmF6cXV4"),
    ],
)
def test_authorization(text: str, value: str) -> None:
    assert_detects(text, value, "authorization")


def test_bearer_in_prose_is_not_a_token() -> None:
    assert_clean("the bearer instrument is payable to the bearer on demand")


@pytest.mark.parametrize(
    "text,value",
    [
        ("postgres://admin:s3cr3t@db.example.com:5432/app", "s3cr3t"),
        ("redis://:hunter2@cache:6379/0", "hunter2"),
        ("mongodb+srv://user:p@ss:w0rd@cluster0.example.net/db", "p@ss:w0rd"),
        ("amqp://guest:guest@localhost", "guest"),
    ],
)
def test_url_password_only_password_part(text: str, value: str) -> None:
    hits = found(text)
    assert (value, "url_password") in hits, hits
    assert not any(d == "url_password" and v != value for v, d in hits)


def test_url_without_password() -> None:
    assert_clean("see https://docs.example.com/guide?a=1 and https://example.com:8443/x")


@pytest.mark.parametrize(
    "text,value",
    [
        ("password=hunter2", "hunter2"),
        ('{"api_key": "abcd1234efgh"}', "abcd1234efgh"),
        ("DB_PASSWORD: 'Tr0ub4dor&3'", "Tr0ub4dor&3"[:9]),
        ("Server=db;User Id=sa;Password=Str0ng!;", "Str0ng!"),
        ("client_secret=Zx9-abc", "Zx9-abc"),
    ],
)
def test_credential_key_value(text: str, value: str) -> None:
    assert_detects(text, value, "credential")


def test_credential_ignores_token_counts() -> None:
    assert_clean("max_tokens: 512, tokens=1024, input_tokens: 12")


def test_masks_are_not_redetected() -> None:
    assert_clean("password=<CREDENTIAL> and Authorization: Bearer <AUTHORIZATION> <EMAIL:9f3a1c2b>")


def test_overlapping_findings_resolved_once() -> None:
    hits = found("key=sk-proj-Ab3dEfGh1jKlMnOpQrStUvWxYz0123456789AbCd")
    assert len(hits) == 1


@pytest.mark.skipif(not HYPERSCAN_AVAILABLE, reason="hyperscan not installed")
def test_prefilter_gives_same_findings_as_running_every_detector() -> None:
    texts = [f"x {v} y" for _, v in SECRETS] + [
        "call +1 (415) 555-2671 or mail a.b@c.de, card 4111 1111 1111 1111, ip 2001:db8::1",
        "IBAN DE89 3704 0044 0532 0130 00; ssn 123-45-6789; "
        "aws secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "postgres://u:p@h/db Authorization: Bearer abcdef123456 password=x1y2z3",
        "plain prose 2024-03-15 10:45:12 v1.2.3 nothing to see",
        "tel\u00a0+41\u00a044\u00a0624\u00a065\u00a068 and ünïcödé text 4111\u00a01111\u00a01111\u00a01111",
    ]
    for t in texts:
        assert SCANNER.scan(t) == PLAIN_SCANNER.scan(t), t


def test_several_emails_close_together() -> None:
    text = "a.b@x.io, C.D@Y.IO;e@f.example and x@@y and g@h.com"
    assert [v for v, d in found(text) if d == "email"] == ["a.b@x.io", "C.D@Y.IO", "e@f.example", "g@h.com"]
