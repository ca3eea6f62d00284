"""Records as they enter and leave the Kafka layer, and the spanline-* header names (docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

Headers = list[tuple[str, bytes]]

H_PROJECT = "spanline-project"
H_RECEIVED_AT = "spanline-received-at"
H_SCHEMA = "spanline-schema"
H_SIGNAL = "spanline-signal"
H_ENCRYPTION = "spanline-encryption"
SCHEMA_VERSION = 1

SIGNAL_TRACES = b"traces"
SIGNAL_LOGS = b"logs"


@dataclass(slots=True)
class InMessage:
    """A consumed record; `value` is exactly the bytes on the wire."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)
    timestamp_ms: int = 0

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_str(self, name: str, default: str = "") -> str:
        raw = self.header(name)
        if raw is None:
            return default
        return raw.decode("utf-8", "replace")

    @property
    def size(self) -> int:
        return len(self.value) + (len(self.key) if self.key else 0)


@dataclass(slots=True)
class OutRecord:
    """A record to produce. Keyed records keep trace locality (key = trace_id)."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Headers = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.value) + (len(self.key) if self.key else 0)


def standard_headers(project: str, received_at_ns: int, signal: bytes) -> Headers:
    return [
        (H_PROJECT, project.encode("utf-8")),
        (H_RECEIVED_AT, str(received_at_ns).encode("ascii")),
        (H_SCHEMA, str(SCHEMA_VERSION).encode("ascii")),
        (H_SIGNAL, signal),
    ]
