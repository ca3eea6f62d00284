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

import threading
from collections.abc import Sequence
from typing import Any

from spanline.redactor.detectors.base import Finding, TextDetector
from spanline.redactor.detectors.contact import EmailDetector, IbanDetector, Ipv6Detector
from spanline.redactor.detectors.numbers import NumberDetector
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
_CLEAN_CACHE_MAX_LEN = 64
_CLEAN_CACHE_SIZE = 50_000


def builtin_detectors(enabled: frozenset[str]) -> list[TextDetector]:
    """Instances for the enabled built-in detector names, in priority order."""
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
    if enabled & {"phone", "card", "ssn", "ip"}:
        out.append(NumberDetector(enabled))
    if "ip" in enabled:
        out.append(Ipv6Detector())
    return out


class Scanner:
    """Runs detectors over text and returns non-overlapping findings sorted by position."""

    def __init__(self, detectors: Sequence[TextDetector], *, prefilter: bool = True) -> None:
        self._detectors = tuple(detectors)
        self._patterns: list[tuple[bytes, bool, int]] = []
        always: list[int] = []
        for index, detector in enumerate(self._detectors):
            triggers = getattr(detector, "triggers", ())
            if not triggers:
                always.append(index)
            for pattern, caseless in triggers:
                self._patterns.append((pattern.encode("ascii"), caseless, index))
        self._always = tuple(always)
        self.prefiltered = prefilter and HYPERSCAN_AVAILABLE and bool(self._patterns)
        self._local = threading.local()  # Hyperscan scratch space is per thread
        # Short strings without findings recur constantly ("user", "assistant", "stop",
        # model names...): remember them. Only clean strings are kept, never detected values.
        self._clean: set[str] = set()

    def _database(self) -> Any:
        db = getattr(self._local, "db", None)
        if db is None:
            assert _hs is not None
            db = _hs.Database(mode=_hs.HS_MODE_BLOCK)
            flags = [
                _hs.HS_FLAG_SINGLEMATCH | (_hs.HS_FLAG_CASELESS if caseless else 0)
                for _, caseless, _ in self._patterns
            ]
            db.compile(
                expressions=[p for p, _, _ in self._patterns],
                ids=[index for _, _, index in self._patterns],
                flags=flags,
                elements=len(self._patterns),
            )
            self._local.db = db
        return db

    def _triggered(self, text: str) -> list[int]:
        hits: list[int] = []
        append = hits.append

        def on_match(index: int, _start: int, _end: int, _flags: int, _ctx: object) -> None:
            append(index)

        self._database().scan(text.encode("utf-8", "surrogatepass"), match_event_handler=on_match)
        if self._always:
            hits.extend(self._always)
        if len(hits) > 1:
            hits = sorted(set(hits))
        return hits

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
