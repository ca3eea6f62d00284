"""What the engine did to a message: counts per (detector, action), never values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from spanline.v1.spanline_pb2 import AuditCount


@dataclass
class RedactionReport:
    """Counts of redacted spans of text (and dropped attributes) per (detector, action)."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def from_detector_counts(cls, counts: Mapping[str, int], actions: Mapping[str, str]) -> RedactionReport:
        return cls({(d, actions.get(d, "drop")): n for d, n in counts.items() if n})

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __bool__(self) -> bool:
        return bool(self.counts)

    def merge(self, other: RedactionReport) -> RedactionReport:
        """Add ``other`` into this report (for aggregating a window of messages); returns self."""
        for key, n in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + n
        return self

    def by_detector(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (detector, _action), n in self.counts.items():
            out[detector] = out.get(detector, 0) + n
        return out

    def to_audit_counts(
        self,
        project_id: str,
        signal: str,
        window_start_unix_nano: int = 0,
        window_end_unix_nano: int = 0,
    ) -> list[AuditCount]:
        """``AuditCount`` messages for the ``spanline.audit`` topic (key: project id)."""
        return [
            AuditCount(
                project_id=project_id,
                detector=detector,
                action=action,
                count=n,
                window_start_unix_nano=window_start_unix_nano,
                window_end_unix_nano=window_end_unix_nano,
                signal=signal,
            )
            for (detector, action), n in sorted(self.counts.items())
        ]


def merge_reports(reports: Iterable[RedactionReport]) -> RedactionReport:
    out = RedactionReport()
    for r in reports:
        out.merge(r)
    return out
