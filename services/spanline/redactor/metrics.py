"""Prometheus metrics of the redactor. Labels carry detector names, never values."""

from __future__ import annotations

from typing import Literal, get_args

from prometheus_client import Counter, Histogram

from spanline.core.kafka import DlqReason
from spanline.core.metric_series import create_series

DlqReasonLabel = Literal[DlqReason.DECODE_ERROR, DlqReason.REDACTION_FAILED]
"""The dead-letter reasons the redactor gives (its ``_dead`` accepts no other)."""

MESSAGES = Counter(
    "spanline_redactor_messages",
    "Messages processed by the redactor, by signal and outcome (redacted | dlq)",
    ["signal", "outcome"],
)
BYTES = Counter(
    "spanline_redactor_bytes",
    "Payload bytes consumed by the redactor, by signal",
    ["signal"],
)
REDACTIONS = Counter(
    "spanline_redactor_redactions",
    "Redacted values (and attributes removed by the key policy: detector=key_policy), by detector",
    ["detector"],
)
DLQ = Counter(
    "spanline_redactor_dlq",
    "Messages sent to the dead-letter topic, by reason (decode_error | redaction_failed)",
    ["reason"],
)
LATENCY = Histogram(
    "spanline_redactor_latency_seconds",
    "Time to redact one message",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)


def record_redactions(by_detector: dict[str, int]) -> None:
    for detector, n in by_detector.items():
        REDACTIONS.labels(detector=detector).inc(n)


def create_known_series() -> None:
    """Dead-letter series at 0 from start-up: a panel and an alert see the first failure."""
    create_series(DLQ, get_args(DlqReasonLabel))
