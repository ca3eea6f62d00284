"""The one error a row builder raises for a message that cannot become rows, and id checks.

Kept apart from the builders so that every builder module can raise it without importing
the others; ``spanline.writer.rows`` re-exports it for the service.
"""

from __future__ import annotations


class RowBuildError(ValueError):
    """One message cannot become rows: send it to the DLQ with ``reason``, keep the batch."""

    def __init__(self, table: str, reason: str) -> None:
        super().__init__(f"{table}: {reason}")
        self.table = table
        self.reason = reason


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
