"""Phone-number validation through ``phonenumbers`` (Google's libphonenumber metadata).

The digit-run classifier in :mod:`numbers` decides whether a candidate has the *shape* of
a phone number; this module decides whether the digits are a *number* somewhere: valid
under its country code (``+49 ...``, ``0049 ...``) or in one of the policy's default
regions when it has none. That is what lets a bare national number ("089 123456",
"06 12 34 56 78") through without a context word, and keeps order numbers and ids out
even when someone said "phone" near them.

A region whose trunk prefix is ``0`` (DE, GB, FR...) only accepts numbers written with
it: parsed without it, almost any 9-11 digit id is a "valid" German or French number.
Results are memoised per digit string: the same numbers recur across a conversation.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat

DEFAULT_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR")


def _trunk_prefix(region: str) -> str | None:
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return None if meta is None else meta.national_prefix


@lru_cache(maxsize=64)
def _trunk_prefixes(regions: tuple[str, ...]) -> tuple[tuple[str, str | None], ...]:
    return tuple((r, _trunk_prefix(r)) for r in regions)


def _parse(digits: str, international: bool, regions: tuple[str, ...]) -> list[PhoneNumber]:
    """Every reading of ``digits`` worth checking: one with a country code, else one per region."""
    if international:
        body = digits[2:] if digits.startswith("00") else digits
        try:
            return [phonenumbers.parse("+" + body, None)]
        except NumberParseException:
            return []
    out: list[PhoneNumber] = []
    for region, trunk in _trunk_prefixes(regions):
        if trunk == "0" and not digits.startswith("0"):
            continue
        try:
            out.append(phonenumbers.parse(digits, region))
        except NumberParseException:
            continue
    return out


@lru_cache(maxsize=65_536)
def check(digits: str, international: bool, regions: tuple[str, ...] = DEFAULT_REGIONS) -> tuple[bool, bool]:
    """(valid, possible): whether ``digits`` is an assigned-range number, or at least has a
    possible length, under its country code (``international``) or in one of ``regions``."""
    valid = possible = False
    for number in _parse(digits, international, regions):
        if phonenumbers.is_valid_number(number):
            return True, True
        possible = possible or phonenumbers.is_possible_number(number)
    return valid, possible


def normalise(value: str, regions: tuple[str, ...] = DEFAULT_REGIONS) -> str | None:
    """E.164 form of a phone number as written (for pseudonyms: one person, one token), or
    None when no region reads it as a possible number."""
    digits = "".join(c for c in value if c.isdigit())
    stripped = value.lstrip(" (")
    international = stripped.startswith("+") or digits.startswith("00")
    if "(0)" in value and international:
        digits = _drop_bracketed_zero(value)
    readings = _parse(digits, international, regions)
    for number in readings:
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    for number in readings:
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return None


def _drop_bracketed_zero(value: str) -> str:
    """Digits of "+49 (0)30 1234" without the "(0)" trunk hint."""
    return "".join(c for c in value.replace("(0)", "", 1) if c.isdigit())
