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

import re
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


@lru_cache(maxsize=256)
def _length_screen(region: str) -> tuple[str, str, frozenset[int], re.Pattern[str] | None] | None:
    """(trunk prefix, country code, national number lengths that can be possible, the
    international call prefix) of a region whose parsing only strips a plain trunk prefix
    and the country code; None for the others (prefix rules by regex, such as
    Argentina's), which are always parsed."""
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if meta is None or meta.national_prefix_transform_rule is not None:
        return None
    trunk = meta.national_prefix or ""
    if (meta.national_prefix_for_parsing or "") != trunk:
        return None
    desc = meta.general_desc
    if desc is None:
        return None
    lengths = frozenset(desc.possible_length or ()) | frozenset(desc.possible_length_local_only or ())
    idd = re.compile(meta.international_prefix) if meta.international_prefix else None
    return trunk, str(meta.country_code), lengths, idd


def _cannot_be_possible(digits: str, region: str) -> bool:
    """True when no reading of ``digits`` in ``region`` has a possible length, so parsing
    (~40 us) cannot find it valid or possible: an 8-digit order number is no US number.

    Only digits that parsing reads as they are qualify: not opening with the region's
    trunk prefix, country code or international call prefix ("00", "011"), which parsing
    strips, in combinations that are not worth modelling here.
    """
    screen = _length_screen(region)
    if screen is None:
        return False
    trunk, cc, lengths, idd = screen
    if (
        (trunk and digits.startswith(trunk))
        or digits.startswith(cc)
        or (idd is not None and idd.match(digits))
    ):
        return False
    return len(digits) not in lengths


def _digits_in(pattern: str) -> frozenset[str]:
    """Every digit a match of ``pattern`` can start with, over-approximated: the digits it
    spells out or holds in a ``[x-y]`` range (all ten if it has a class escape or ``.``)."""
    if "." in pattern or re.search(r"\\[A-Za-z]", pattern):
        return frozenset("0123456789")
    out = {c for c in pattern if c.isdigit()}
    for lo, hi in re.findall(r"([0-9])-([0-9])", pattern):
        out.update(str(d) for d in range(int(lo), int(hi) + 1))
    return frozenset(out)


@lru_cache(maxsize=64)
def national_leading_digits(length: int, regions: tuple[str, ...]) -> frozenset[str]:
    """The first digits a bare national number of ``length`` digits can have and still be
    parsed in one of ``regions`` (:func:`check` rejects every other one unparsed): for the
    default regions an 8-digit order number can only be a phone number when it starts
    with 0 (a trunk prefix) or 1 (the US country code, or its "011" call prefix).
    A superset: the number detector's trigger skips the others."""
    out: set[str] = set()
    for region, trunk in _trunk_prefixes(regions):
        if trunk == "0":
            out.add("0")
            continue
        screen = _length_screen(region)
        if screen is None or length in screen[2]:
            return frozenset("0123456789")
        plain_trunk, cc, _lengths, idd = screen
        out.update(plain_trunk[:1] + cc[:1])
        if idd is not None:
            out |= _digits_in(idd.pattern)
    return frozenset(out)


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
        if (trunk == "0" and not digits.startswith("0")) or _cannot_be_possible(digits, region):
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
