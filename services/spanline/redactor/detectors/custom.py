"""Detectors defined by a policy: named regular expressions and dictionary terms."""

from __future__ import annotations

import re
from collections.abc import Iterable

from spanline.redactor.detectors.base import Finding


class RegexDetector:
    """A policy regex; the whole match (or its group ``v`` if the pattern has one) is redacted."""

    def __init__(self, name: str, pattern: re.Pattern[str]) -> None:
        self.name = name
        self._pattern = pattern
        self._group: str | int = "v" if "v" in pattern.groupindex else 0

    def find(self, text: str, out: list[Finding]) -> None:
        group = self._group
        for m in self._pattern.finditer(text):
            start, end = m.span(group)
            if end > start:
                out.append((start, end, self.name))


def dictionary_pattern(terms: Iterable[str], ignore_case: bool) -> re.Pattern[str]:
    """One alternation for all terms, longest first, matched on word boundaries."""
    ordered = sorted({t for t in terms if t}, key=len, reverse=True)
    body = "|".join(re.escape(t) for t in ordered)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE if ignore_case else 0)
