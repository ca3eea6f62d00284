"""Ingest metrics. Labels are bounded enums (protocol, signal, code, reason), never ids or values.

`protocol` is `grpc` or `http`; `code` is the answer the client got in its protocol's
terms: a gRPC status name (`OK`, `UNAVAILABLE`, ...) or an HTTP status (`200`, `503`, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import Counter, Gauge, Histogram

from spanline.core.metric_series import create_series
from spanline.ingest.limits import RejectReason

REQUESTS = Counter(
    "spanline_ingest_requests_total", "OTLP Export calls by outcome", ["protocol", "signal", "code"]
)
ITEMS_RECEIVED = Counter(
    "spanline_ingest_items_received_total", "Spans / log records received", ["protocol", "signal"]
)
ITEMS_ACCEPTED = Counter(
    "spanline_ingest_items_accepted_total",
    "Spans / log records acknowledged after Kafka stored them",
    ["protocol", "signal"],
)
ITEMS_REJECTED = Counter(
    "spanline_ingest_items_rejected_total",
    "Spans / log records rejected via partial_success",
    ["protocol", "signal", "reason"],
)
BYTES_RECEIVED = Counter(
    "spanline_ingest_bytes_received_total",
    "Request bytes received (after decompression)",
    ["protocol", "signal"],
)
RECORDS_PRODUCED = Counter("spanline_ingest_records_total", "Per-trace Kafka records produced", ["signal"])
INFLIGHT_BYTES = Gauge("spanline_ingest_inflight_bytes", "Bytes of requests being processed now")
EXPORT_SECONDS = Histogram(
    "spanline_ingest_export_seconds",
    "Export call latency, receive to answer",
    ["protocol", "signal"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def observe_request(protocol: str, signal: str, code: str, seconds: float) -> None:
    REQUESTS.labels(protocol, signal, code).inc()
    EXPORT_SECONDS.labels(protocol, signal).observe(seconds)


def create_known_series(codes_by_protocol: Mapping[str, Iterable[str]], signals: Iterable[str]) -> None:
    """Request and rejection series at 0 from start-up, for each receiver that runs: the
    back-pressure and rejection panels and alerts read a 0, not "No data"."""
    signals = tuple(signals)
    for protocol, codes in codes_by_protocol.items():
        create_series(REQUESTS, [protocol], signals, codes)
        create_series(ITEMS_REJECTED, [protocol], signals, RejectReason)
