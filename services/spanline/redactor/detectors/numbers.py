"""Phone numbers, payment cards, US SSNs and IPv4 addresses: one pass over digit runs.

These four all look like "digits with separators", so one bounded candidate regex finds
digit groups and a classifier decides, per window of consecutive groups, what (if
anything) they are. Checksums (Luhn) and structural rules (SSN areas, IPv4 octets,
dates, thousands separators) keep ids, counters, timestamps and versions out.
"""

from __future__ import annotations

import re

from spanline.redactor.checksums import luhn_valid
from spanline.redactor.detectors import phones
from spanline.redactor.detectors.base import Finding

# Digit groups joined by short separator runs. Possessive digit runs and a bounded number
# of groups keep the worst case linear (no backtracking storms on "1 1 1 1 ... x"). The
# pattern starts with a character class and checks its left boundary by lookbehind after
# it, so the regex engine can skip to candidate characters (4x faster than leading with
# the lookbehind). A digit right after ':' is the tail of a time ("17:08:05.395471").
_CANDIDATE = re.compile(
    r"[+(0-9](?:(?<![\w.+\-/\\].)|(?<=\\[nrt].))(?<!:[0-9])"
    r"(?:(?<=[0-9])[0-9]*+|(?<=\+)[0-9]++|(?<=\()\+?[0-9]++)"
    r"(?:[ \u00a0\-./()]{1,3}[0-9]++){0,9}"
    r"(?P<ext>[ ]?(?:x|ext\.?|extension)[ ]?[0-9]{1,6}+)?(?![\w])"
)
_GROUP = re.compile(r"[0-9]+")

_PHONE_CONTEXT = (
    "phone",
    "tel",
    "mobile",
    "cell",
    "call",
    "fax",
    "whatsapp",
    "sms",
    "dial",
    "contact",
    "ring",
    "handy",
    "mobil",
    "fon",
    "portable",
)
_SSN_CONTEXT = ("ssn", "social security", "social sec")
_CONTEXT_CHARS = 40
_MAX_WINDOW = 8


def _card_prefix_ok(d: str) -> bool:
    """Issuer prefixes of the major networks (Visa, Mastercard, Amex, Discover, JCB, Maestro...)."""
    first = d[0]
    if first in "3456":
        return True
    if first == "2":
        return len(d) == 16 or d.startswith("2131")
    if d.startswith("1800"):
        return len(d) == 15
    return d.startswith("0604")


def _ssn_valid(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _is_date(lens: tuple[int, ...], digits: list[str]) -> bool:
    if lens == (4, 2, 2):
        return digits[0][:2] in ("19", "20")
    if lens in ((2, 2, 4), (1, 2, 4), (2, 1, 4), (1, 1, 4)):
        return digits[2][:2] in ("19", "20")
    return False


def _date_groups(raw: str, spans: list[tuple[int, int]]) -> set[int]:
    """Indices of digit groups forming a date (2024-03-15, 15.03.2024, 03/15/2024)."""
    out: set[int] = set()
    for k in range(len(spans) - 2):
        a, b, c = (raw[s:e] for s, e in spans[k : k + 3])
        sep1 = raw[spans[k][1] : spans[k + 1][0]]
        sep2 = raw[spans[k + 1][1] : spans[k + 2][0]]
        if sep1 != sep2 or sep1 not in ("-", "/", "."):
            continue
        year_first = len(a) == 4 and a[:2] in ("19", "20") and len(b) <= 2 and len(c) <= 2
        year_last = len(c) == 4 and c[:2] in ("19", "20") and len(a) <= 2 and len(b) <= 2
        if year_first or year_last:
            out.update((k, k + 1, k + 2))
    return out


def _is_thousands(lens: tuple[int, ...], seps: list[str]) -> bool:
    """1 234 567 / 1.234.567 style grouping: a formatted quantity, not a phone."""
    return lens[0] <= 3 and all(n == 3 for n in lens[1:]) and all(s in (" ", ".", "\u00a0") for s in seps)


def _context_has(text: str, start: int, words: tuple[str, ...]) -> bool:
    window = text[max(0, start - _CONTEXT_CHARS) : start].lower()
    return any(w in window for w in words)


# Trigger pieces, on UTF-8 bytes: one separator character of _CANDIDATE (NBSP is two bytes).
_SEP = r"(?:[ \-./()]|\xc2\xa0)"
_SEVEN_DIGITS = rf"[0-9](?:{_SEP}{{0,3}}[0-9]){{6}}"
_RUN = rf"{_SEP}{{1,3}}"
_END = "(?:[^0-9]|$)"  # the digit group ends here
_YEAR = "(?:19|20)[0-9]{2}"
_NOT_YEAR = "(?:[03-9][0-9]|1[0-8]|2[1-9])[0-9]{2}"
# The date separators of _date_groups, as they are written inside a character class.
_DATE_SEPS = {"-": r"\-", "/": "/", ".": r"\."}


# A lone 9-digit group is an SSN only after "ssn" / "social sec" (_SSN_CONTEXT, any ASCII
# case) in the _CONTEXT_CHARS characters before it, or in the key above it (read as
# "key: value"): at most 4 bytes a character in UTF-8, plus the framing between a key and
# its value (protobuf tags and lengths, or '": "'); escaped JSON is decoded before
# detectors run and is always looked at.
SSN_CONTEXT_TRIGGER = rf"(?i:ssn|social sec)[\x00-\xff]{{0,{4 * _CONTEXT_CHARS + 16}}}[0-9]{{9}}"


def _more(n: int) -> str:
    """``n`` more digits, each after at most three separator characters."""
    return rf"(?:{_SEP}{{0,3}}[0-9]){{{n}}}"


def _other_than(sep: str) -> str:
    """A separator run of _CANDIDATE that is not the single character ``sep``."""
    others = "".join(v for k, v in _DATE_SEPS.items() if k != sep)
    return rf"(?:[ (){others}]|\xc2\xa0|{_SEP}{{2,3}})"


def _lone_group(length: int, leading: frozenset[str]) -> list[str]:
    """A group of exactly ``length`` digits starting with one of ``leading``, and one of
    that length followed by more groups."""
    first = "".join(sorted(leading))
    out = [rf"[0-9]{{{length}}}{_RUN}[0-9]"]
    if len(leading) == 10:
        out.append(rf"[0-9]{{{length}}}")
    elif first:
        out.append(rf"[{first}][0-9]{{{length - 1}}}")
    return out


def digit_run_trigger(leading8: frozenset[str], leading9: frozenset[str]) -> str:
    """The number detector's trigger body from the start of a _CANDIDATE match: a superset
    of the candidates holding a finding, without the kinds of digit runs that fill chat
    text and can hold none.

    * **A date alone** (``2024-03-15``, ``15.03.2024``, ``03/15/2024``): _date_groups
      takes its three groups out of every window, so a finding needs a fourth group
      after it. The alternatives below spell out the first groups of a candidate case by
      case (length of the first group, whether its separator is one of ``-/.``, the
      second group, the same separator again, the third group) and require more digits
      only where those groups form a date as _date_groups reads it.
    * **A lone 8- or 9-digit group** (``Order #24531763``, ``Tracking number
      900785484``): too short for a card, so a phone number of a default region, which
      the phone check parses only when it starts with one of ``leading8`` / ``leading9``
      (phones.national_leading_digits), or for 9 digits an SSN, which needs its context
      word (:data:`SSN_CONTEXT_TRIGGER`).

    With ``+`` or ``(+`` before it (an international number) any 7 digits fire, as before;
    after ``(`` the groups are read as without it.
    """
    not_date_sep = rf"(?:[ ()]|\xc2\xa0|{_SEP}{{2,3}})"
    alternatives = [
        "[0-9]{10}",
        *_lone_group(9, leading9),
        *_lone_group(8, leading8),
        rf"[0-9]{{7}}{_END}",
        rf"[0-9]{{6}}{_RUN}[0-9]",
        rf"[0-9]{{5}}{_RUN}[0-9]{_more(1)}",
        rf"[0-9]{{3}}{_RUN}[0-9]{_more(3)}",
        # a first group of 1, 2 or 4 digits, then something no date has
        rf"[0-9]{not_date_sep}[0-9]{_more(5)}",
        rf"[0-9]{{2}}{not_date_sep}[0-9]{_more(4)}",
        rf"[0-9]{{4}}{not_date_sep}[0-9]{_more(2)}",
    ]
    for sep, escaped in _DATE_SEPS.items():
        s = escaped if sep != "/" else "/"
        other = _other_than(sep)
        alternatives += [
            # year first: 4 digits, then groups of at most 2 with the same separator
            rf"{_NOT_YEAR}{s}[0-9]{_more(2)}",
            rf"{_YEAR}{s}[0-9]{{3}}",
            rf"{_YEAR}{s}[0-9]{{1,2}}{other}[0-9]",
            rf"{_YEAR}{s}[0-9]{{1,2}}{s}[0-9]{{3}}",
            rf"{_YEAR}{s}[0-9]{{1,2}}{s}[0-9]{{1,2}}{_RUN}[0-9]",
            # year last: groups of at most 2, then a year with the same separator
            rf"[0-9]{s}[0-9]{{3}}{_more(3)}",
            rf"[0-9]{{2}}{s}[0-9]{{3}}{_more(2)}",
            rf"[0-9]{{1,2}}{s}[0-9]{{1,2}}{other}[0-9]{_more(2)}",
            rf"[0-9]{{2}}{s}[0-9]{{2}}{s}[0-9]{{3}}{_END}",
            rf"[0-9]{{1,2}}{s}[0-9]{{1,2}}{s}[0-9]{{1,3}}{_RUN}[0-9]",
            rf"[0-9]{{1,2}}{s}[0-9]{{1,2}}{s}[0-9]{{5}}",
            rf"[0-9]{{1,2}}{s}[0-9]{{1,2}}{s}{_NOT_YEAR}",
            rf"[0-9]{{1,2}}{s}[0-9]{{1,2}}{s}{_YEAR}{_RUN}[0-9]",
        ]
    return rf"(?:(?:\+|\(\+){_SEVEN_DIGITS}|\(?(?:" + "|".join(alternatives) + "))"


class NumberDetector:
    """Finds ``phone``, ``card``, ``ssn`` and ``ip`` (v4) in one pass; disabled kinds are skipped."""

    name = "numbers"
    # Every finding has 7+ digits joined by separator runs of at most 3 characters (NBSP is
    # two bytes in UTF-8), or is a dotted quad.
    triggers = (
        (r"[0-9](?:(?:[ \-./()]|\xc2\xa0){0,3}[0-9]){6}", False),
        (r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}", False),
    )
    # _CANDIDATE starts at '+', '(' or a digit not preceded by [\w.+\-/\\] and holds every
    # group of the window found in it, so 7 digits follow its start (dotted quads, which
    # may start mid-candidate, keep their context-free trigger). It may also start right
    # after a literal ``\\n``, ``\\r`` or ``\\t`` escape, whose letter is a word character.
    # Where these fire, instances look again with refined_triggers (see digit_run_trigger).
    element_triggers: tuple[tuple[str | None, str, bool], ...] = (
        (r"\w.+\-/\\", r"(?:\+|\(\+?)?" + _SEVEN_DIGITS, False),
        (None, triggers[1][0], False),
        # A literal escape before the number ("Tel:\\n0171 1234567" in a repr()'d log line).
        (None, r"\\[nrt](?:\+|\(\+?)?" + _SEVEN_DIGITS, False),
    )

    def __init__(
        self, enabled: frozenset[str], phone_regions: tuple[str, ...] = phones.DEFAULT_REGIONS
    ) -> None:
        self.regions = phone_regions
        body = digit_run_trigger(
            phones.national_leading_digits(8, phone_regions), phones.national_leading_digits(9, phone_regions)
        )
        # Dates and lone 8- and 9-digit groups hold no finding: cheap to tell apart in a
        # second Hyperscan pass near the first trigger's matches, costly in the first pass
        # over everything (the alternatives scan 4x slower). The first trigger is coarse,
        # the others final (see TextDetector); escapes before a number are rare enough to
        # keep their coarse form. Window (scanner.REFINE_BEFORE / REFINE_AFTER): a refined
        # match starts at most 2 bytes (its left context) before the candidate; the coarse
        # match from there ends 7 to 45 bytes after that start ("(+", 7 digits, 6 runs of
        # three 2-byte separators), and every refined alternative ends within 45 bytes of it.
        ssn = (None, SSN_CONTEXT_TRIGGER, False)
        self.element_triggers = (*NumberDetector.element_triggers, ssn)
        self.refined_triggers: tuple[tuple[str | None, str, bool], ...] = (
            (NumberDetector.element_triggers[0][0], body, False),
            *NumberDetector.element_triggers[1:],
            ssn,
        )
        self.phone = "phone" in enabled
        self.card = "card" in enabled
        self.ssn = "ssn" in enabled
        self.ip = "ip" in enabled

    def find(self, text: str, out: list[Finding]) -> None:
        for m in _CANDIDATE.finditer(text):
            raw = m.group()
            if len(raw) < 7 and not (self.ip and raw.count(".") == 3):
                continue
            ext = m.start("ext")
            self._classify_candidate(text, m.start(), raw, ext - m.start() if ext >= 0 else -1, out)

    def _classify_candidate(self, text: str, base: int, raw: str, ext_at: int, out: list[Finding]) -> None:
        limit = ext_at if ext_at >= 0 else len(raw)
        spans = [(g.start(), g.end()) for g in _GROUP.finditer(raw, 0, limit)]
        n = len(spans)
        dates = _date_groups(raw, spans)
        if len(dates) == n:
            return  # only dates ("2025-11-16"): every window holds a date group
        # Digits before group k; windows with too few or too many digits are skipped unread.
        cum = [0]
        for s, e in spans:
            cum.append(cum[-1] + e - s)
        i = 0
        while i < n:
            found = False
            for j in range(min(n - 1, i + _MAX_WINDOW - 1), i - 1, -1):
                nd = cum[j + 1] - cum[i]
                if nd < 7 and not (self.ip and j - i == 3):
                    break  # shorter windows have even fewer digits
                if nd > 19 or (dates and any(i <= k <= j for k in dates)):
                    continue
                hit = self._classify(text, base, raw, spans, i, j, ext_at)
                if hit is not None:
                    out.append(hit)
                    i = j + 1
                    found = True
                    break
            if not found:
                i += 1

    def _classify(
        self,
        text: str,
        base: int,
        raw: str,
        spans: list[tuple[int, int]],
        i: int,
        j: int,
        ext_at: int,
    ) -> Finding | None:
        groups = [raw[s:e] for s, e in spans[i : j + 1]]
        digits = "".join(groups)
        nd = len(digits)
        if nd > 19 and not (self.phone and raw.startswith("+")):
            return None
        ng = len(groups)
        seps = [raw[spans[k][1] : spans[k + 1][0]] for k in range(i, j)]
        lens = tuple(len(g) for g in groups)
        if i == 0:
            pre = raw[: spans[0][0]]
        else:
            before = raw[spans[i - 1][1] : spans[i][0]]
            pre = "(" if before.endswith("(") else ""
        start = base + spans[i][0] - len(pre)
        end = base + spans[j][1]
        plus = pre.startswith("+") or pre == "(+"
        paren = pre.startswith("(")

        if self.ip and ng == 4 and not pre and all(s == "." for s in seps):
            if all(len(g) <= 3 and int(g) <= 255 for g in groups):
                return (start, end, "ip")
            return None
        if self.ssn and not pre:
            if ng == 3 and lens == (3, 2, 4) and seps[0] == seps[1] and seps[0] in ("-", " "):
                if _ssn_valid(groups[0], groups[1], groups[2]):
                    return (start, end, "ssn")
            elif ng == 1 and nd == 9 and _context_has(text, start, _SSN_CONTEXT):
                if _ssn_valid(digits[:3], digits[3:5], digits[5:]):
                    return (start, end, "ssn")
        if (
            self.card
            and 12 <= nd <= 19
            and not pre
            and (ng == 1 or (all(s in (" ", "-") for s in seps) and min(lens) >= 3))
            and _card_prefix_ok(digits)
            and luhn_valid(digits)
        ):
            return (start, end, "card")
        if self.phone and self._is_phone(text, start, digits, groups, lens, seps, plus, paren):
            if j == len(spans) - 1 and ext_at >= 0:
                end = base + len(raw)
            return (start, end, "phone")
        return None

    def _is_phone(
        self,
        text: str,
        start: int,
        digits: str,
        groups: list[str],
        lens: tuple[int, ...],
        seps: list[str],
        plus: bool,
        paren: bool,
    ) -> bool:
        """Shape first (cheap): never after "#" or an order/invoice/reference word; an
        unmistakable layout is a phone. Otherwise ``phonenumbers`` decides: a number valid
        under its country code or in a default region needs no context word, a merely
        possible one needs a phone word before it."""
        shape = _phone_shape(digits, groups, lens, seps, plus, paren)
        if shape == _NO or _negative_context(text, start):
            return False
        if shape == _YES:
            # An unmistakable phone layout: parsing it too would cost ~40 us per region.
            return True
        # (+CC and 00CC numbers are _YES or _NO by shape: only national ones get here.)
        valid, possible = phones.check(digits, False, self.regions)
        if valid:
            return True
        return possible and _context_has(text, start, _PHONE_CONTEXT)


_NO, _CONTEXT, _YES = 0, 1, 2
# Words right before a number that make it something else than a phone number.
_NOT_PHONE_WORDS = (
    "order",
    "invoice",
    "ticket",
    "ref",
    "reference",
    "tracking",
    "account",
    "acct",
    "id",
    "no",
    "nr",
    "number",
    "case",
    "customer",
    "po",
    "sku",
)
_LAST_WORD = re.compile(r"([A-Za-z]+)\W{0,3}$")


def _negative_context(text: str, start: int) -> bool:
    """ "#12345678", "order 12345678", "Order No. 12345678" (but "phone number 0301234567"
    and "mobile no. 0171..." stay phones: a phone word right before the order word wins)."""
    before = text[max(0, start - 24) : start]
    if before.rstrip(" ").endswith("#"):
        return True
    m = _LAST_WORD.search(before)
    if m is None or m.group(1).lower() not in _NOT_PHONE_WORDS:
        return False
    head = before[: m.start()].lower()
    if m.group(1).lower() in ("no", "nr", "number", "id"):
        # "phone number", "tel. no.", "mobile nr": the word qualifies a phone word.
        return not any(w in head[-12:] for w in _PHONE_CONTEXT)
    return True


def _phone_shape(
    digits: str, groups: list[str], lens: tuple[int, ...], seps: list[str], plus: bool, paren: bool
) -> int:
    """Whether the digit groups look like a phone number: yes, only with a context word, or no."""
    nd = len(digits)
    ng = len(groups)
    if any(s.strip(" \u00a0") not in ("", "-", ".", "/", "(", ")", ")(") for s in seps):
        return _NO
    if plus:
        return _YES if 8 <= nd <= 15 and digits[0] != "0" else _NO
    if ng == 3 and _is_date(lens, groups):
        return _NO
    if digits.startswith("00") and 10 <= nd <= 15 and digits[2] != "0":
        return _YES
    if paren:
        return _YES if 2 <= lens[0] <= 5 and 7 <= nd <= 12 else _NO
    if ng == 1:
        if nd == 10 and digits[0] in "23456789":
            return _YES
        if nd == 11 and digits[0] == "1" and digits[1] in "23456789":
            return _YES
        if digits[0] == "0" and digits[1] != "0" and 10 <= nd <= 11:
            return _YES
        return _CONTEXT if 7 <= nd <= 15 else _NO
    if not 7 <= nd <= 12:
        return _CONTEXT if 7 <= nd <= 15 else _NO
    if ng == 2 and lens[0] == 4 and digits[0] != "0":
        # "5841 178 Main St", "2019 2020": house numbers and years, unless someone says phone.
        return _CONTEXT
    if _is_thousands(lens, seps) and digits[0] != "0":
        return _CONTEXT
    if lens[0] == 1 and not (digits[0] == "1" and nd == 11):
        return _CONTEXT
    if min(lens) < 2 or lens[0] > 5:
        return _CONTEXT
    return _YES
