"""Fake personal data and credentials of the right shape, for the recall corpus and tests.

Every value is generated (random, fixed seed by the caller), valid where the real thing
has a check digit (stdnum computes them), and never a real person's or account's data.
Secrets follow the formats of gitleaks' default rules; each kind also has *near misses*
(one character short, wrong prefix, placeholder) that a detector must not report.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable

from stdnum import luhn
from stdnum.de import idnr
from stdnum.es import dni
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.pl import pesel

_ALNUM = string.ascii_letters + string.digits
_HEX = "0123456789abcdef"


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _mixed(rng: random.Random, n: int) -> str:
    """Random alphanumerics with at least one digit, one upper and one lower letter."""
    while True:
        v = _rand(rng, _ALNUM, n)
        if any(c.isdigit() for c in v) and any(c.isupper() for c in v) and any(c.islower() for c in v):
            return v


def _jwt(rng: random.Random) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    head = part({"alg": "HS256", "typ": "JWT"})
    body = part({"sub": _rand(rng, string.digits, 10), "iat": rng.randint(1_600_000_000, 1_800_000_000)})
    return f"{head}.{body}.{_rand(rng, _ALNUM + '-_', 43)}"


def _private_key(rng: random.Random) -> str:
    lines = [_rand(rng, _ALNUM + "+/", 64) for _ in range(4)]
    return "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END RSA PRIVATE KEY-----"


# kind -> generator of a positive example (the whole string is the secret).
SECRETS: dict[str, Callable[[random.Random], str]] = {
    "openai_key": lambda r: "sk-proj-" + _mixed(r, 74) + "T3BlbkFJ" + _mixed(r, 74),
    "anthropic_key": lambda r: "sk-ant-api03-" + _rand(r, _ALNUM + "-_", 93) + "AA",
    "google_api_key": lambda r: "AIza" + _rand(r, _ALNUM + "-_", 35),
    "aws_access_key": lambda r: "AKIA" + _rand(r, string.ascii_uppercase + "234567", 16),
    "azure_client_secret": lambda r: (
        _rand(r, _ALNUM, 3) + str(r.randint(0, 9)) + "Q~" + _rand(r, _ALNUM + "_~.", 34)
    ),
    "github_token": lambda r: r.choice(["ghp_", "gho_", "ghs_"]) + _mixed(r, 36),
    "gitlab_token": lambda r: "glpat-" + _mixed(r, 20),
    "slack_token": lambda r: (
        f"xoxb-{_rand(r, string.digits, 12)}-{_rand(r, string.digits, 13)}-{_mixed(r, 24)}"
    ),
    "stripe_key": lambda r: (
        r.choice(["sk_live_", "rk_live_", "sk_test_", "rk_test_"]) + _mixed(r, r.choice([24, 34, 99]))
    ),
    "twilio_key": lambda r: "SK" + _rand(r, _HEX, 32),
    "sendgrid_key": lambda r: "SG." + _rand(r, _ALNUM + "-_", 22) + "." + _rand(r, _ALNUM + "-_", 43),
    "huggingface_token": lambda r: "hf_" + _mixed(r, 34),
    "mailgun_key": lambda r: "key-" + _rand(r, _HEX, 32),
    "jwt": _jwt,
    "private_key": _private_key,
    "credential": lambda r: _mixed(r, 20),  # written as api_key=<value> by the templates
}

# kind -> near misses: same family, not a credential (or not complete).
NEAR_MISSES: dict[str, Callable[[random.Random], str]] = {
    "openai_key": lambda r: "sk-" + "placeholder" * 2,  # a word, not a key
    "google_api_key": lambda r: "AIza" + _rand(r, _ALNUM, 20),  # too short
    "aws_access_key": lambda r: "AKIA" + _rand(r, string.ascii_uppercase, 10),  # too short
    "github_token": lambda r: "ghp_" + _mixed(r, 20),  # too short
    "stripe_key": lambda r: "sk_live_" + _mixed(r, 6),  # too short
    "twilio_key": lambda r: "SK" + _rand(r, _HEX, 31),  # one short
    "sendgrid_key": lambda r: "SG." + _rand(r, _ALNUM, 10),  # no second part
    "huggingface_token": lambda r: "hf_" + _mixed(r, 20),  # too short
    "mailgun_key": lambda r: "key-" + _rand(r, "ghijklmnopqrstuvwxyz", 32),  # not hex
    "azure_client_secret": lambda r: "abc1Q~short",
    "credential": lambda r: "None",  # api_key=None
}


def secret_in_context(kind: str, value: str, rng: random.Random) -> tuple[str, int]:
    """A sentence holding ``value``; returns the text and the value's offset."""
    if kind == "credential":
        templates = [
            "api_key={v}",
            'config = {{"api_key": "{v}"}}',
            "export SERVICE_TOKEN={v}",
            "password: {v}",
        ]
    else:
        templates = [
            "here is my key {v} please fix",
            "export KEY={v}",
            '{{"Authorization": "{v}"}}',
            "the logs show `{v}` failing",
            "Config:\\n{v}\\nend",
        ]
    template = rng.choice(templates)
    head, _, tail = template.partition("{v}")
    head = head.replace("{{", "{").replace("}}", "}")
    tail = tail.replace("{{", "{").replace("}}", "}")
    return head + value + tail, len(head)


# -- national identifiers (valid check digits) --------------------------------------------


def de_idnr(rng: random.Random) -> str:
    while True:
        digits = [rng.randint(1, 9)] + [rng.randint(0, 9) for _ in range(9)]
        body = "".join(map(str, digits))
        for check in "0123456789":
            if idnr.is_valid(body + check):
                return body + check


def nl_bsn(rng: random.Random) -> str:
    while True:
        body = "".join(str(rng.randint(0, 9)) for _ in range(8))
        for check in "0123456789":
            if bsn.is_valid(body + check) and body[0] != "0":
                return body + check


def pl_pesel(rng: random.Random) -> str:
    year = rng.randint(1950, 2005)
    month = rng.randint(1, 12) + (20 if year >= 2000 else 0)
    body = f"{year % 100:02d}{month:02d}{rng.randint(1, 28):02d}{rng.randint(0, 9999):04d}"
    for check in "0123456789":
        if pesel.is_valid(body + check):
            return body + check
    raise AssertionError("unreachable")


def es_dni(rng: random.Random) -> str:
    number = f"{rng.randint(0, 99_999_999):08d}"
    if rng.random() < 0.3:
        prefix = rng.choice("XYZ")
        number7 = f"{rng.randint(0, 9_999_999):07d}"
        return prefix + number7 + dni.calc_check_digit(str("XYZ".index(prefix)) + number7)
    return number + dni.calc_check_digit(number)


def it_fiscal_code(rng: random.Random) -> str:
    body = (
        _rand(rng, string.ascii_uppercase, 6)
        + f"{rng.randint(0, 99):02d}"
        + rng.choice("ABCDEHLMPRST")
        + f"{rng.randint(1, 28):02d}"
        + rng.choice(string.ascii_uppercase)
        + f"{rng.randint(100, 999):03d}"
    )
    return body + codicefiscale.calc_check_digit(body)


def fr_nir(rng: random.Random) -> str:
    body = f"{rng.randint(1, 2)}{rng.randint(40, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 95):02d}"
    body += f"{rng.randint(1, 999):03d}{rng.randint(1, 999):03d}"
    key = 97 - int(body) % 97
    return f"{body[0]} {body[1:3]} {body[3:5]} {body[5:7]} {body[7:10]} {body[10:13]} {key:02d}"


def uk_nino(rng: random.Random) -> str:
    first = rng.choice("ABCEGHJKLMNOPRSTWXYZ")
    second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    while first + second in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
        second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    d = _rand(rng, string.digits, 6)
    spaced = rng.random() < 0.5
    sep = " " if spaced else ""
    return f"{first}{second}{sep}{d[:2]}{sep}{d[2:4]}{sep}{d[4:]}{sep}{rng.choice('ABCD')}"


def se_personnummer(rng: random.Random) -> str:
    body = (
        f"{rng.randint(40, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.randint(0, 999):03d}"
    )
    check = luhn.calc_check_digit(body)
    return f"{body[:6]}-{body[6:]}{check}"


def us_ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


NATIONAL_IDS: dict[str, tuple[Callable[[random.Random], str], tuple[str, ...]]] = {
    # detector -> (generator, context phrases a person would write before it)
    "uk_nino": (uk_nino, ("My National Insurance number is", "NI number:", "NINO")),
    "de_idnr": (
        de_idnr,
        ("Meine Steuer-ID ist", "Steuerliche Identifikationsnummer:", "my German tax ID is"),
    ),
    "fr_nir": (fr_nir, ("numéro de sécurité sociale", "My NIR is", "NIR:")),
    "es_dni": (es_dni, ("DNI", "my NIE/DNI is", "documento:")),
    "it_fiscal_code": (it_fiscal_code, ("codice fiscale", "CF:", "my Italian tax code is")),
    "nl_bsn": (nl_bsn, ("BSN:", "mijn burgerservicenummer is", "my BSN is")),
    "pl_pesel": (pl_pesel, ("PESEL:", "mój PESEL to", "my PESEL number is")),
    "se_personnummer": (
        se_personnummer,
        ("personnummer", "my Swedish personal identity number is", "personnr:"),
    ),
    "ssn": (us_ssn, ("SSN", "my social security number is", "SSN:")),
}
