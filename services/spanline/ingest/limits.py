"""Per-span validation against the OTLP spec and the configured limits.

Rejected spans are reported through OTLP `partial_success`, so one bad span costs the
client that span, not the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


@dataclass(frozen=True, slots=True)
class Limits:
    max_attributes: int
    max_value_bytes: int
    max_items: int


class RejectReason(StrEnum):
    """Why one span / log record was rejected: the ``reason`` label of
    ``spanline_ingest_items_rejected_total`` (every member's series exists from start-up)."""

    INVALID_TRACE_ID = "invalid_trace_id"
    INVALID_SPAN_ID = "invalid_span_id"
    INVALID_PARENT_SPAN_ID = "invalid_parent_span_id"
    TOO_MANY_ATTRIBUTES = "too_many_attributes"
    VALUE_TOO_LARGE = "value_too_large"
    TOO_MANY_SPANS = "too_many_spans"
    TOO_LARGE = "too_large"


@dataclass(slots=True)
class Rejections:
    """Counts by reason; the first few reasons become the partial_success message."""

    by_reason: dict[RejectReason, int] = field(default_factory=dict)

    def add(self, reason: RejectReason, n: int = 1) -> None:
        self.by_reason[reason] = self.by_reason.get(reason, 0) + n

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    def message(self, noun: str) -> str:
        if not self.by_reason:
            return ""
        parts = [f"{n} {noun}: {_REASON_TEXT.get(r, r)}" for r, n in sorted(self.by_reason.items())]
        return "; ".join(parts)


_REASON_TEXT = {
    RejectReason.INVALID_TRACE_ID: "trace_id must be 16 bytes and not all zero",
    RejectReason.INVALID_SPAN_ID: "span_id must be 8 bytes and not all zero",
    RejectReason.INVALID_PARENT_SPAN_ID: "parent_span_id must be empty or 8 bytes",
    RejectReason.TOO_MANY_ATTRIBUTES: "too many attributes (limit spanline ingest.max_attributes_per_span)",
    RejectReason.VALUE_TOO_LARGE: "an attribute value exceeds ingest.max_attribute_value_bytes",
    RejectReason.TOO_MANY_SPANS: "request holds more spans than ingest.max_spans_per_request",
    RejectReason.TOO_LARGE: "a single item exceeds the Kafka message size limit",
}


def check_ids(trace_id: bytes, span_id: bytes, parent_span_id: bytes) -> RejectReason | None:
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
        return RejectReason.INVALID_TRACE_ID
    if len(span_id) != 8 or span_id == _ZERO_SPAN:
        return RejectReason.INVALID_SPAN_ID
    if parent_span_id and len(parent_span_id) != 8:
        return RejectReason.INVALID_PARENT_SPAN_ID
    return None


def _value_too_large(value: AnyValue, limit: int) -> bool:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return len(value.string_value.encode("utf-8")) > limit
    if kind == "bytes_value":
        return len(value.bytes_value) > limit
    if kind == "array_value":
        return any(_value_too_large(v, limit) for v in value.array_value.values)
    if kind == "kvlist_value":
        return any(_value_too_large(kv.value, limit) for kv in value.kvlist_value.values)
    return False


def check_attributes(
    encoded_size: int, attributes: Sequence[KeyValue], limits: Limits
) -> RejectReason | None:
    """Attribute count and value size. Values are only walked when the item is big enough
    to hold an oversized one, which keeps the common path free of Python loops."""
    if len(attributes) > limits.max_attributes:
        return RejectReason.TOO_MANY_ATTRIBUTES
    if encoded_size > limits.max_value_bytes:
        for kv in attributes:
            if _value_too_large(kv.value, limits.max_value_bytes):
                return RejectReason.VALUE_TOO_LARGE
    return None
