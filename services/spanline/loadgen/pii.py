"""Synthetic personal data planted into generated traces.

Redaction can only be tested against values we know we put in, so every planted value is
recorded and shaped like the real thing (cards pass the Luhn check, keys carry
their vendor prefixes) so detectors cannot dodge them on a technicality. All values are
fictional: reserved example domains, 555-01xx and Ofcom drama phone ranges, test BINs.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Literal

PiiKind = Literal["email", "phone", "card", "api_key"]
PII_KINDS: tuple[PiiKind, ...] = ("email", "phone", "card", "api_key")

_FIRST = ("alice", "bruno", "chen", "dana", "emeka", "farah", "goran", "hana", "ivan", "jules")
_LAST = ("martin", "okafor", "nakamura", "silva", "novak", "haddad", "larsen", "moreau")
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
_CARD_PREFIXES = ("4111", "4012", "5555", "5105", "3782")
_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class PlantedPii:
    """One planted value and the trace that carries it (possibly in several spans)."""

    kind: PiiKind
    value: str
    trace_id: bytes


def luhn_check_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    digits = "".join(ch for ch in number if ch.isdigit())
    return len(digits) >= 12 and luhn_check_digit(digits[:-1]) == digits[-1]


def make_pii(kind: PiiKind, rng: random.Random, serial: int) -> str:
    """A value of ``kind``; ``serial`` keeps emails distinct within one generated set."""
    if kind == "email":
        return f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{serial}@{rng.choice(_DOMAINS)}"
    if kind == "phone":
        if rng.random() < 0.5:
            return f"+1 202-555-01{serial % 100:02d}"
        return f"+44 20 7946 0{serial % 1000:03d}"
    if kind == "card":
        prefix = rng.choice(_CARD_PREFIXES)
        length = 15 if prefix.startswith("37") else 16
        body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
        number = body + luhn_check_digit(body)
        return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    token = "".join(rng.choice(_ALNUM) for _ in range(40))
    return rng.choice(("sk-proj-", "sk-ant-api03-", "ghp_")) + token
