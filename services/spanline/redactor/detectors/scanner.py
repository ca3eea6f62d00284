"""The scanner: every enabled detector over one text, overlaps resolved.

Speed comes from a prefilter: the triggers of all detectors are compiled into one
Hyperscan database, scanned once per text (hundreds of MB/s), and only detectors whose
trigger fired run their Python regexes. Without the ``hyperscan`` package (e.g. on a
platform without a wheel) every detector runs on every text: same results, slower.

Overlap rule: the earliest start wins, then the longest match, then detector order
(secrets before PII, built-ins before policy-defined ones). A span is reported once, so
counts in the audit topic are counts of redacted spans, not of detector hits.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from itertools import accumulate, repeat
from operator import add
from typing import Any

from spanline.redactor.detectors.base import Finding, TextDetector
from spanline.redactor.detectors.contact import EmailDetector, IbanDetector, Ipv6Detector
from spanline.redactor.detectors.names import NameDetector
from spanline.redactor.detectors.national_ids import national_id_detectors
from spanline.redactor.detectors.numbers import NumberDetector
from spanline.redactor.detectors.phones import DEFAULT_REGIONS as DEFAULT_PHONE_REGIONS
from spanline.redactor.detectors.secrets import (
    AuthorizationDetector,
    AwsSecretDetector,
    CredentialDetector,
    PrefixedSecretDetector,
    UrlPasswordDetector,
)

_hs: Any
try:
    import hyperscan as _hs
except ImportError:  # pragma: no cover - exercised on platforms without a wheel
    _hs = None

HYPERSCAN_AVAILABLE = _hs is not None
HYPERSCAN: Any = _hs
"""The hyperscan module, or None where there is no wheel (the prefilter uses the same one)."""
MAX_LOCATED_MATCHES = 256
"""Matches a locating scan collects before it gives up (the caller then looks at everything)."""


def compile_database(patterns: Sequence[tuple[bytes, bool, int]], flags: int) -> Any:
    """A block-mode Hyperscan database of (expression, caseless, id) with ``flags`` on each
    (``HS_FLAG_SINGLEMATCH`` to ask whether, ``HS_FLAG_MULTILINE`` to locate in joined text)."""
    assert _hs is not None
    db = _hs.Database(mode=_hs.HS_MODE_BLOCK)
    db.compile(
        expressions=[p for p, _, _ in patterns],
        ids=[i for _, _, i in patterns],
        flags=[flags | (_hs.HS_FLAG_CASELESS if caseless else 0) for _, caseless, _ in patterns],
        elements=len(patterns),
    )
    return db


class _Databases:
    """Hyperscan databases scanned as one: bulk literal triggers (a gazetteer of thousands
    of names) compile in milliseconds in a database of their own, each under an id of its
    own, but take seconds mixed with the other detectors' triggers or sharing one id."""

    def __init__(self, main: Any, bulk: Any, owners: list[int]) -> None:
        self._main = main
        self._bulk = bulk
        self._owners = owners

    def scan(self, data: bytes, match_event_handler: Any) -> None:
        if self._main is not None:
            self._main.scan(data, match_event_handler=match_event_handler)
        if self._bulk is not None:
            owners = self._owners

            def bulk_handler(pid: int, start: int, end: int, flags: int, ctx: object) -> Any:
                return match_event_handler(owners[pid], start, end, flags, ctx)

            self._bulk.scan(data, match_event_handler=bulk_handler)


def _compile_split(patterns: Sequence[tuple[bytes, bool, int]], bulk: int, flags: int) -> _Databases:
    """The first ``len(patterns) - bulk`` patterns in one database, the bulk ones in another."""
    cut = len(patterns) - bulk
    main = compile_database(patterns[:cut], flags) if cut else None
    rest = patterns[cut:]
    owners = [index for _, _, index in rest]
    numbered = [(p, c, k) for k, (p, c, _) in enumerate(rest)]
    return _Databases(main, compile_database(numbered, flags) if rest else None, owners)


# What precedes the first character of a scanned protobuf string: the tag of the field
# (AnyValue.string_value and KeyValue.key 0x0a; Status.message and Event.name 0x12;
# Span.name 0x2a) or a length continuation byte, then the last byte of the length.
# (LogRecord.event_name, tag 0x62 = 'b', would make every "b" a string start: the log
# walk checks event names as text instead.) Inside JSON a string starts after '"'.
_STRING_START = rb"[\x0a\x12\x2a\x80-\xff][\x00-\x7f]"


def trigger_pattern(left: str | None, body: str) -> bytes:
    """An element trigger (see ``TextDetector``) as a pattern on serialised elements and JSON
    text (and, looser than needed there, on a text scanned on its own)."""
    if left is None:
        return body.encode("ascii")
    return b"(?:^|[^" + left.encode("ascii") + b"]|" + _STRING_START + b")" + body.encode("ascii")


_SHARED = threading.local()


def shared_database(patterns: tuple[tuple[bytes, bool, int], ...], flags: int) -> Any:
    """:func:`compile_database`, compiled once per thread for the scanner and the prefilter
    alike (refined triggers: their alternatives take a good part of a second to compile)."""
    cache: dict[tuple[object, ...], Any] | None = getattr(_SHARED, "databases", None)
    if cache is None:
        cache = _SHARED.databases = {}
    db = cache.get((patterns, flags))
    if db is None:
        db = cache[(patterns, flags)] = compile_database(patterns, flags)
    return db


_CLEAN_CACHE_MAX_LEN = 64
_CLEAN_CACHE_SIZE = 50_000


def builtin_detectors(
    enabled: frozenset[str], *, phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS
) -> list[TextDetector]:
    """Instances for the enabled built-in detector names, in priority order; ``phone_regions``
    are tried for phone numbers written without a country code."""
    out: list[TextDetector] = []
    if enabled & {
        "private_key",
        "anthropic_key",
        "openai_key",
        "aws_access_key",
        "github_token",
        "gitlab_token",
        "slack_token",
        "google_api_key",
        "jwt",
        "stripe_key",
        "twilio_key",
        "sendgrid_key",
        "huggingface_token",
        "mailgun_key",
        "azure_client_secret",
        "azure_storage_key",
    }:
        out.append(PrefixedSecretDetector(enabled))
    if "aws_secret_key" in enabled:
        out.append(AwsSecretDetector())
    if "authorization" in enabled:
        out.append(AuthorizationDetector())
    if "url_password" in enabled:
        out.append(UrlPasswordDetector())
    if "credential" in enabled:
        out.append(CredentialDetector())
    if "email" in enabled:
        out.append(EmailDetector())
    if "iban" in enabled:
        out.append(IbanDetector())
    out.extend(national_id_detectors(enabled))
    if enabled & {"phone", "card", "ssn", "ip"}:
        out.append(NumberDetector(enabled, phone_regions))
    if "ip" in enabled:
        out.append(Ipv6Detector())
    if "name" in enabled:
        out.append(NameDetector())
    return out


def trigger_specs(detector: TextDetector) -> list[tuple[str | None, str, bool]]:
    """A detector's ``element_triggers``, else its ``triggers`` as context-free ones.

    Element triggers fire on fewer texts (ids, model names, dates) and are a superset of
    what the detector finds where its trigger fires, so scanning with them instead
    gives the same findings with fewer detector runs.
    """
    specific = getattr(detector, "element_triggers", None)
    if specific is not None:
        return list(specific)
    return [(None, pattern, caseless) for pattern, caseless in getattr(detector, "triggers", ())]


COARSE = 1 << 16
"""Added to the detector index as the id of a coarse trigger (see TextDetector)."""
REFINE_BEFORE = 48
REFINE_AFTER = 40
"""How far a refined trigger's match may reach around the end of a coarse trigger's match
covering the same finding (see ``TextDetector``): a located pass looks again only in these
windows around the coarse matches."""


def confirm_coarse(data: bytes, coarse: list[tuple[int, int]], refined: Any) -> list[tuple[int, int]]:
    """The coarse matches ``(end, detector)`` (ascending ends) whose detector's refined
    triggers match near them, in the windows that hold every refined match of the
    findings a coarse match covers (REFINE_BEFORE / REFINE_AFTER; overlapping windows are
    merged and looked at once). A confirmed coarse match keeps its place: it lies in the
    finding it covers, so the literal or element it points to is the finding's.
    ``refined``: the refined triggers, first match per detector (HS_FLAG_SINGLEMATCH).
    """
    confirmed: list[tuple[int, int]] = []
    found: set[int] = set()
    add = found.add

    def on_match(detector: int, _start: int, _end: int, _flags: int, _ctx: object) -> None:
        add(detector)

    i, n, size = 0, len(coarse), len(data)
    while i < n:
        lo, hi = max(0, coarse[i][0] - REFINE_BEFORE), coarse[i][0] + REFINE_AFTER
        j = i + 1
        while j < n and coarse[j][0] - REFINE_BEFORE <= hi:
            hi = coarse[j][0] + REFINE_AFTER
            j += 1
        found.clear()
        refined.scan(data[lo : min(hi, size)], match_event_handler=on_match)
        if found:
            confirmed += [hit for hit in coarse[i:j] if hit[1] in found]
        i = j
    return confirmed


def refined_specs(detector: TextDetector) -> list[tuple[str | None, str, bool]]:
    """A detector's ``refined_triggers`` (see ``TextDetector``): none for most."""
    return list(getattr(detector, "refined_triggers", ()))


def text_trigger(left: str | None, body: str) -> bytes:
    """A trigger as a pattern on a text scanned on its own, whose only boundary is its start."""
    return (body if left is None else f"(?:^|[^{left}]){body}").encode("ascii")


def joined_starts(parts: Sequence[bytes], offset: int = 0) -> list[int]:
    """Where each part starts in ``b"\\n".join(parts)`` (shifted by ``offset``), and where
    the join ends: one Hyperscan pass runs over the join, :func:`part_of` maps each match
    back."""
    return list(accumulate(map(add, map(len, parts), repeat(1)), initial=offset))  # in C


def part_of(starts: list[int], end: int) -> int:
    """The part holding the last byte of a match that ends at ``end`` in the join."""
    return bisect.bisect_right(starts, end - 1) - 1


class Scanner:
    """Runs detectors over text and returns non-overlapping findings sorted by position."""

    def __init__(self, detectors: Sequence[TextDetector], *, prefilter: bool = True) -> None:
        self._detectors = tuple(detectors)
        self._patterns: list[tuple[bytes, bool, int]] = []
        always: list[int] = []
        refined_only: list[tuple[bytes, bool, int]] = []
        for index, detector in enumerate(self._detectors):
            specs = trigger_specs(detector)
            if not specs:
                always.append(index)
            final = set(refined_specs(detector))
            for left, body, caseless in specs:
                # A coarse trigger (see TextDetector) reports its detector plus COARSE.
                coarse = bool(final) and (left, body, caseless) not in final
                self._patterns.append((text_trigger(left, body), caseless, index + (COARSE if coarse else 0)))
            # (In the prefilter's form, so that both share one compiled database.)
            refined_only += [
                (trigger_pattern(*spec[:2]), spec[2], index) for spec in final if spec not in specs
            ]
        # Bulk literal triggers (a gazetteer) come last, in databases of their own (_Databases).
        bulk = [
            (literal.encode("ascii"), False, index)
            for index, detector in enumerate(self._detectors)
            for literal in getattr(detector, "bulk_triggers", ())
        ]
        self._patterns.extend(bulk)
        self._bulk = len(bulk)
        # Second look where a coarse trigger fired (see TextDetector), in a stable order.
        self._refined = tuple(sorted(refined_only))
        self._coarse = any(index >= COARSE for _, _, index in self._patterns)
        self._always = tuple(always)
        self.prefiltered = prefilter and HYPERSCAN_AVAILABLE and bool(self._patterns)
        self._local = threading.local()  # Hyperscan scratch space is per thread
        # Short strings without findings recur constantly ("user", "assistant", "stop",
        # model names...): remember them. Only clean strings are kept, never detected values.
        self._clean: set[str] = set()

    @property
    def triggers_cover_all(self) -> bool:
        """True if no detector can find anything in a text that none of the triggers matches."""
        return self.prefiltered and not self._always

    def element_trigger_groups(self) -> list[list[tuple[str | None, str, bool]]]:
        """``(left, body, caseless)`` for every detector (see ``TextDetector``), for the prefilter:
        every detector's element triggers in one group, bulk literal triggers (the name
        gazetteer) in groups of their own (see :class:`_Databases`)."""
        merged: list[tuple[str | None, str, bool]] = []
        bulk_groups: list[list[tuple[str | None, str, bool]]] = []
        for detector in self._detectors:
            bulk = getattr(detector, "bulk_triggers", ())
            if bulk:
                bulk_groups.append([(None, literal, False) for literal in bulk])
            merged.extend(trigger_specs(detector))
        return [merged, *bulk_groups]

    def refined_triggers(self) -> list[tuple[str | None, str, bool, int]]:
        """``(left, body, caseless, detector index)`` of every refined trigger, for the prefilter
        (those also among the element triggers are final ones, the others replace coarse ones)."""
        return [
            (left, body, caseless, index)
            for index, detector in enumerate(self._detectors)
            for left, body, caseless in refined_specs(detector)
        ]

    def element_trigger_owners(self) -> list[int]:
        """The index of the detector owning each trigger of :meth:`element_trigger_groups`, in
        the order of its groups (for :meth:`scan_triggered` on located literals)."""
        merged: list[int] = []
        bulk: list[int] = []
        for index, detector in enumerate(self._detectors):
            bulk.extend([index] * len(getattr(detector, "bulk_triggers", ())))
            merged.extend([index] * len(trigger_specs(detector)))
        return merged + bulk

    def _state(self) -> tuple[Any, list[int], Any]:
        state = getattr(self._local, "state", None)
        if state is None:
            assert _hs is not None
            db = _compile_split(self._patterns, self._bulk, _hs.HS_FLAG_SINGLEMATCH)
            hits: list[int] = []
            append = hits.append

            def on_match(index: int, _start: int, _end: int, _flags: int, _ctx: object) -> None:
                append(index)

            state = (db, hits, on_match)
            self._local.state = state
        return state  # type: ignore[no-any-return]

    def _triggered(self, text: str) -> list[int]:
        db, hits, on_match = self._state()
        hits.clear()
        data = text.encode("utf-8", "surrogatepass")
        db.scan(data, match_event_handler=on_match)
        if self._coarse and hits and max(hits) >= COARSE:
            confirmed = [index for index in hits if index < COARSE]
            hits.clear()
            if self._refined:
                self._refine_state().scan(data, match_event_handler=on_match)
            hits.extend(confirmed)
        if self._always:
            hits.extend(self._always)
        if len(hits) > 1:
            return sorted(set(hits))
        return list(hits)

    def _refine_state(self) -> Any:
        """This thread's database of refined triggers (first match per detector; "^" after
        each newline)."""
        assert _hs is not None
        return shared_database(self._refined, _hs.HS_FLAG_SINGLEMATCH | _hs.HS_FLAG_MULTILINE)

    def flag_texts(self, texts: Sequence[str]) -> dict[int, set[int]] | None:
        """For each text in which some trigger fires, the detectors whose trigger fired there
        (a superset of those that fire on the text alone: :meth:`scan_triggered` on them gives
        what :meth:`scan` gives).

        One Hyperscan pass over all texts joined by newlines, instead of one call per text.
        None means "every text, every detector" (no prefilter, a detector without triggers,
        or so many trigger hits that scanning text by text is cheaper).
        """
        if not self.prefiltered or self._always:
            return None
        parts = [t.encode("utf-8", "surrogatepass") for t in texts]
        starts = joined_starts(parts)
        db, matches, on_match = self._locate_state()
        matches.clear()
        data = b"\n".join(parts)
        try:
            db.scan(data, match_event_handler=on_match)
            if self._coarse and matches and max(matches)[0] >= COARSE:
                coarse = sorted((end, detector - COARSE) for detector, end in matches if detector >= COARSE)
                kept = [match for match in matches if match[0] < COARSE]
                matches.clear()
                if self._refined:
                    matches += [(d, end) for end, d in confirm_coarse(data, coarse, self._refine_state())]
                matches.extend(kept)
        except _hs.ScanTerminated:
            return None
        flagged: dict[int, set[int]] = {}
        for detector, end in matches:
            text = part_of(starts, end)
            found = flagged.get(text)
            if found is None:
                flagged[text] = {detector}
            else:
                found.add(detector)
        return flagged

    def _locate_state(self) -> tuple[Any, list[tuple[int, int]], Any]:
        state = getattr(self._local, "locate", None)
        if state is None:
            assert _hs is not None
            # Every match is reported (no SINGLEMATCH) to locate its text; "^" also matches
            # after the newline that separates texts, as at the start of a text on its own.
            db = _compile_split(self._patterns, self._bulk, _hs.HS_FLAG_MULTILINE)
            matches: list[tuple[int, int]] = []
            append = matches.append

            def on_match(index: int, _start: int, end: int, _flags: int, _ctx: object) -> bool:
                append((index, end))
                return len(matches) >= MAX_LOCATED_MATCHES

            state = (db, matches, on_match)
            self._local.locate = state
        return state  # type: ignore[no-any-return]

    def warm(self) -> None:
        """Compile this thread's databases now (see :meth:`Prefilter.warm`)."""
        if _hs is not None and self.prefiltered:
            self._state()
            self._locate_state()
            if self._refined:
                self._refine_state()

    def scan(self, text: str) -> list[Finding]:
        short = len(text) <= _CLEAN_CACHE_MAX_LEN
        if short and text in self._clean:
            return []
        found: list[Finding] = []
        detectors = self._detectors
        if self.prefiltered:
            for index in self._triggered(text):
                detectors[index].find(text, found)
        else:
            for detector in detectors:
                detector.find(text, found)
        if not found:
            if short:
                if len(self._clean) >= _CLEAN_CACHE_SIZE:
                    self._clean.clear()
                self._clean.add(text)
            return found
        return _resolve(found)

    def scan_triggered(self, text: str, detectors: set[int]) -> list[Finding]:
        """:meth:`scan` with the detectors to run already known (from :meth:`flag_texts`),
        sharing its cache of short clean texts (a superset of the detectors that fire on
        the text alone gives the same findings, so a clean verdict is the same either way)."""
        short = len(text) <= _CLEAN_CACHE_MAX_LEN
        if short and text in self._clean:
            return []
        found: list[Finding] = []
        for index in sorted(detectors):
            self._detectors[index].find(text, found)
        if found:
            return _resolve(found)
        if short:
            if len(self._clean) >= _CLEAN_CACHE_SIZE:
                self._clean.clear()
            self._clean.add(text)
        return found


def _resolve(found: list[Finding]) -> list[Finding]:
    """Non-overlapping findings, earliest first (see the module doc)."""
    if len(found) == 1:
        return found
    # Stable sort: on equal spans the detector that ran first (higher priority) wins.
    found.sort(key=lambda f: (f[0], f[0] - f[1]))
    resolved = [found[0]]
    last_end = found[0][1]
    for f in found[1:]:
        if f[0] >= last_end:
            resolved.append(f)
            last_end = f[1]
    return resolved
