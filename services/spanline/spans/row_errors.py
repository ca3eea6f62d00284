"""The one error a row builder raises for a message that cannot become rows; id and time checks.

Kept apart from the builders so that every builder module can raise it without importing
the others; ``spanline.spans.rows`` re-exports it for the service.
"""

from __future__ import annotations


class RowBuildError(ValueError):
    """One message cannot become rows: send it to the DLQ with ``reason``, keep the batch."""

    def __init__(self, table: str, reason: str) -> None:
        super().__init__(f"{table}: {reason}")
        self.table = table
        self.reason = reason


TIME_NS_MAX = (1 << 63) - 1
"""Latest nanosecond time a row can hold: DateTime64(9) and Arrow ``timestamp[ns]`` are signed
64-bit (2262-04-11). OTLP times are unsigned ``fixed64``, so the wire can carry more."""


def time_ns(value: int, what: str, table: str) -> int:
    """``value`` if it fits a row's time column, else :class:`RowBuildError` for this message.

    One out-of-range time must reject its own message: left in the batch it would fail the
    Arrow conversion of every row inserted with it.
    """
    if value > TIME_NS_MAX or value < 0:
        raise RowBuildError(table, f"{what} {value} is outside the DateTime64(9) range (1970..2262)")
    return value


def hex_id(raw: bytes, size: int, what: str, table: str, *, required: bool) -> str:
    """Lowercase hex of an OTLP id; empty (or all-zero) optional ids become ``""``."""
    if not raw:
        if required:
            raise RowBuildError(table, f"{what} is empty")
        return ""
    if len(raw) != size:
        raise RowBuildError(table, f"{what} has {len(raw)} bytes, expected {size}")
    if not any(raw):
        if required:
            raise RowBuildError(table, f"{what} is all zeros")
        return ""
    return raw.hex()
