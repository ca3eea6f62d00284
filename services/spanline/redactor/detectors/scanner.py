"""The scanner: every enabled detector over one text, overlaps resolved.

Overlap rule: the earliest start wins, then the longest match, then detector priority
(secrets before PII, built-ins before policy-defined ones). A span is reported once, so
counts in the audit topic are counts of redacted spans, not of detector hits.
"""

from __future__ import annotations

from collections.abc import Sequence

from spanline.redactor.detectors.base import Finding, TextDetector
from spanline.redactor.detectors.contact import EmailDetector, IbanDetector, Ipv6Detector
from spanline.redactor.detectors.numbers import NumberDetector
from spanline.redactor.detectors.secrets import SecretDetector


def builtin_detectors(enabled: frozenset[str]) -> list[TextDetector]:
    """Instances for the enabled built-in detector names, in priority order."""
    out: list[TextDetector] = [SecretDetector(enabled)]
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

    def __init__(self, detectors: Sequence[TextDetector]) -> None:
        self._detectors = tuple(detectors)

    def scan(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        for detector in self._detectors:
            detector.find(text, found)
        if len(found) <= 1:
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
