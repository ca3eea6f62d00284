"""Prometheus metrics of the span model (names prefixed ``spanline_spans_``).

Every service that reads traces through :mod:`spanline.spans` (writer, scorer, coldtier)
counts here; each process has its own registry, so the scrape job tells them apart.
Labels are bounded: table names, a canonical provider set, a reason enum.
"""

from __future__ import annotations

from prometheus_client import Counter

COST_UNKNOWN_MODEL = Counter(
    "spanline_spans_cost_unknown_model_total",
    "Spans with token usage whose model has no price: cost left NULL",
    ["provider"],
)

PAYLOADS_OFFLOADED = Counter(
    "spanline_spans_payloads_offloaded_total", "Payload fields moved to the object store (claim check)"
)

PAYLOAD_BYTES_OFFLOADED = Counter(
    "spanline_spans_payload_bytes_offloaded_total", "Bytes of payload fields moved to the object store"
)

ROWS_REJECTED = Counter(
    "spanline_spans_messages_unparseable_total",
    "Messages the row builders could not turn into rows (sent to the DLQ by the service)",
    ["table"],
)

SPAN_BUILD_FALLBACKS = Counter(
    "spanline_spans_span_build_fallbacks_total",
    "Trace messages the compiled span builder left to the Python builder (slower, same rows)",
    ["reason"],
)
