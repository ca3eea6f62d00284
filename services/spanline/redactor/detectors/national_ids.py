"""European national identifiers, validated by ``python-stdnum``.

Each identifier has a format regex, a validator (check digits, embedded dates, registry
rules: all from stdnum, except the UK NINO which has no check digit and is checked by its
prefix rules) and, where the format alone is ambiguous, a context requirement: a bare
9-digit number is as likely an order id as a Dutch BSN, and an 11-digit one a phone
number, a German tax id or a Polish PESEL. Those fire only with a context word nearby
(:data:`CONTEXT_CHARS` before or after), or, where the id has an official grouping
("36 574 261 809", "880320-0016"), when written in it.

The US SSN lives in :mod:`numbers` (it shares the digit-run classifier with phones).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.pl import pesel
from stdnum.se import personnummer

from spanline.redactor.detectors.base import NATIONAL_ID_DETECTORS, Finding

CONTEXT_CHARS = 60

_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})


def _nino_valid(value: str) -> bool:
    """HMRC's allocation rules: no D/F/I/Q/U/V, no O second, no administrative prefixes."""
    compact = value.replace(" ", "").upper()
    return compact[:2] not in _NINO_BAD_PREFIXES


def _es_valid(value: str) -> bool:
    compact = value.replace("-", "").replace(" ", "").upper()
    if compact[0] in "XYZ":
        return bool(nie.is_valid(compact))
    return bool(dni.is_valid(compact))


def _stdnum(module: object) -> Callable[[str], bool]:
    is_valid: Callable[[str], bool] = module.is_valid  # type: ignore[attr-defined]
    return lambda value: bool(is_valid(value))


@dataclass(frozen=True)
class _IdRule:
    name: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool]
    # Context words (lower case, whole words); with None the format is enough.
    context: tuple[str, ...] | None
    # A match of this (on the matched value) needs no context word: the official grouping.
    grouped: re.Pattern[str] | None
    # Hyperscan/re trigger: a superset of where a finding can be (see TextDetector).
    trigger: str
    caseless: bool = False
    # Characters that cannot precede a finding (the pattern's lookbehind), as an element
    # trigger's ``left`` class (see TextDetector): hex ids and model names ("...c15736134",
    # "chatcmpl-...") then do not make whole spans look like they hold an id.
    left: str | None = None


_B = r"(?<![A-Za-z0-9])"
_E = r"(?![A-Za-z0-9])"
_RULES: tuple[_IdRule, ...] = (
    _IdRule(
        "uk_nino",
        re.compile(_B + r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]" + _E),
        _nino_valid,
        None,
        None,
        r"[A-Z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]",
        left="A-Za-z0-9",
    ),
    _IdRule(
        "de_idnr",
        re.compile(r"(?<![0-9])[1-9][0-9] ?[0-9]{3} ?[0-9]{3} ?[0-9]{3}(?![0-9])"),
        _stdnum(idnr),
        (
            "steuer",
            "steuerid",
            "steuer-id",
            "idnr",
            "id-nr",
            "identifikationsnummer",
            "tax id",
            "tax-id",
            "tax_id",
            "taxid",
        ),
        re.compile(r"[0-9]{2} [0-9]{3} [0-9]{3} [0-9]{3}"),
        r"steuer|idnr|id-nr|identifikationsnummer|tax.?id|[1-9][0-9] [0-9]{3} [0-9]{3} [0-9]{3}",
        True,
    ),
    _IdRule(
        "fr_nir",
        re.compile(
            r"(?<![0-9])[12] ?[0-9]{2} ?[0-9]{2} ?(?:[0-9]{2}|2[ABab]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}(?![0-9])"
        ),
        _stdnum(nir),
        None,
        None,
        r"[12] ?[0-9]{2} ?[0-9]{2} ?(?:[0-9]{2}|2[ABab]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}",
        left="0-9",
    ),
    _IdRule(
        "es_dni",
        re.compile(_B + r"(?:[0-9]{8}|[XYZ]-?[0-9]{7})-?[A-Z]" + _E),
        _es_valid,
        None,
        None,
        r"(?:[0-9]{8}|[XYZ]-?[0-9]{7})-?[A-Z]",
        left="A-Za-z0-9",
    ),
    _IdRule(
        "it_fiscal_code",
        re.compile(_B + r"[A-Z]{6}[0-9LMNP-V]{2}[A-EHLMPR-T][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z]" + _E),
        lambda v: bool(codicefiscale.is_valid(v)),
        None,
        None,
        r"[A-Z]{6}[0-9LMNP-V]{2}[A-EHLMPR-T][0-9LMNP-V]{2}[A-Z]",
        left="A-Za-z0-9",
    ),
    _IdRule(
        "nl_bsn",
        re.compile(r"(?<![0-9])(?:[0-9]{4}\.?[0-9]{2}\.?[0-9]{3}|[0-9]{3} ?[0-9]{3} ?[0-9]{3})(?![0-9])"),
        lambda v: bool(bsn.is_valid(v.replace(" ", ""))),
        ("bsn", "burgerservicenummer", "sofinummer", "sofi", "citizen service number"),
        None,
        r"bsn|burgerservicenummer|sofi|citizen service number",
        True,
    ),
    _IdRule(
        "pl_pesel",
        re.compile(r"(?<![0-9])[0-9]{11}(?![0-9])"),
        _stdnum(pesel),
        ("pesel",),
        None,
        r"pesel",
        True,
    ),
    _IdRule(
        "se_personnummer",
        re.compile(r"(?<![0-9])(?:[0-9]{2})?[0-9]{6}[-+ ]?[0-9]{4}(?![0-9])"),
        _stdnum(personnummer),
        ("personnummer", "personnr", "person-nr", "personal identity number", "samordningsnummer"),
        re.compile(r"(?:[0-9]{2})?[0-9]{6}[-+][0-9]{4}"),
        r"personnummer|personnr|person-nr|personal identity number|samordningsnummer|[0-9]{6}[-+][0-9]{4}",
        True,
    ),
)


def _has_context(low: str, start: int, end: int, words: tuple[str, ...]) -> bool:
    before = low[max(0, start - CONTEXT_CHARS) : start]
    after = low[end : end + CONTEXT_CHARS // 2]
    for w in words:
        for window in (before, after):
            i = window.find(w)
            while i != -1:
                left_ok = i == 0 or not window[i - 1].isalpha()
                j = i + len(w)
                right_ok = j >= len(window) or not window[j].isalpha()
                if left_ok and right_ok:
                    return True
                i = window.find(w, i + 1)
    return False


class NationalIdDetector:
    """One national identifier (see the module doc); its findings carry the rule's name."""

    def __init__(self, rule: _IdRule) -> None:
        self._rule = rule
        self.name = rule.name
        self.triggers: tuple[tuple[str, bool], ...] = ((rule.trigger, rule.caseless),)
        if rule.left is not None:
            self.element_triggers = ((rule.left, rule.trigger, rule.caseless),)

    def find(self, text: str, out: list[Finding]) -> None:
        rule = self._rule
        low: str | None = None
        for m in rule.pattern.finditer(text):
            value = m.group()
            if not rule.valid(value):
                continue
            if rule.context is not None and not (rule.grouped is not None and rule.grouped.fullmatch(value)):
                if low is None:
                    low = text.lower()
                if not _has_context(low, m.start(), m.end(), rule.context):
                    continue
            out.append((m.start(), m.end(), rule.name))


assert tuple(r.name for r in _RULES) == NATIONAL_ID_DETECTORS


def national_id_detectors(enabled: frozenset[str]) -> list[NationalIdDetector]:
    return [NationalIdDetector(rule) for rule in _RULES if rule.name in enabled]
