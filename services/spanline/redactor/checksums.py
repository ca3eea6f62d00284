"""Check-digit validation: a checksum turns a 'looks like a number' into 'is one'.

Validated detectors (cards, IBANs, national ids) only fire when the checksum holds, which
is what keeps their precision high on telemetry full of ids, timestamps and counters.
The algorithms are python-stdnum's (maintained, registry-backed: IBAN lengths and BBAN
formats per country); this module only adapts them to the detectors' inputs.
"""

from __future__ import annotations

from stdnum import iban as _iban
from stdnum import luhn as _luhn
from stdnum.exceptions import ValidationError


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) check over a string of ASCII digits."""
    if not digits.isascii() or not digits.isdigit():
        return False
    return bool(_luhn.is_valid(digits))


def iban_valid(iban: str) -> bool:
    """ISO 7064 mod-97 check plus the registered length and BBAN layout of the country.

    ``iban`` is upper-case without separators. The national check digits inside some
    BBANs are not checked (``check_country=False``): a mistyped account number in a
    message is still someone's bank details.
    """
    if not iban.isascii() or not iban.isalnum():
        return False
    try:
        _iban.validate(iban, check_country=False)
    except ValidationError:
        return False
    return True


def iban_countries() -> tuple[str, ...]:
    """The country codes an IBAN can start with: those python-stdnum's registry has a BBAN
    layout for (``iban_valid`` rejects every other one)."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return tuple(a + b for a in letters for b in letters if _iban._ibandb.info(a + b + "00")[0][1])
