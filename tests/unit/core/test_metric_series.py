"""Known series at 0 from start-up: what panels and alerts read before the first failure."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from spanline.core.kafka import metrics as kafka_metrics
from spanline.core.kafka.strategy import DlqReason
from spanline.core.metric_series import create_series


def _samples(counter: Counter) -> dict[tuple[str, ...], float]:
    return {
        tuple(s.labels.values()): s.value
        for m in counter.collect()
        for s in m.samples
        if s.name.endswith("_total")
    }


def test_every_combination_is_created_at_zero_and_counted_values_are_kept() -> None:
    counter = Counter("t_failures", "test", ["table", "outcome"], registry=CollectorRegistry())
    counter.labels("spans", "rejected").inc(3)
    create_series(counter, ("spans", "logs"), ("retried", "rejected"))
    assert _samples(counter) == {
        ("spans", "retried"): 0.0,
        ("spans", "rejected"): 3.0,
        ("logs", "retried"): 0.0,
        ("logs", "rejected"): 0.0,
    }


def test_a_consumer_creates_its_dead_letter_series_for_every_reason() -> None:
    kafka_metrics.create_consumer_series(["t-metric-series.raw"])
    got = {k for k in _samples(kafka_metrics.DLQ_RECORDS) if k[0] == "t-metric-series.raw.dlq"}
    assert got == {("t-metric-series.raw.dlq", r.value) for r in DlqReason}
