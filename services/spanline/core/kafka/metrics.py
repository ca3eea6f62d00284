"""Metrics of the shared Kafka layer: every service reports these the same way."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from spanline.core.kafka.dlq import dlq_topic
from spanline.core.kafka.strategy import DlqReason
from spanline.core.metric_series import create_series

PRODUCED_RECORDS = Counter(
    "spanline_kafka_produced_records_total", "Records acknowledged by Kafka", ["topic"]
)
PRODUCED_BYTES = Counter(
    "spanline_kafka_produced_bytes_total", "Value+key bytes acknowledged by Kafka", ["topic"]
)
PRODUCE_ERRORS = Counter("spanline_kafka_produce_errors_total", "Failed produce calls", ["reason"])
PRODUCE_SECONDS = Histogram(
    "spanline_kafka_produce_seconds",
    "Time from send to acknowledgement of a group of records",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMED_RECORDS = Counter("spanline_kafka_consumed_records_total", "Records consumed", ["topic"])
CONSUMED_BYTES = Counter("spanline_kafka_consumed_bytes_total", "Bytes consumed", ["topic"])
COMMITS = Counter("spanline_kafka_commits_total", "Offset commits after successful processing")
COMMIT_FAILURES = Counter(
    "spanline_kafka_commit_failures_total", "Commits that failed (batch will be replayed)"
)
DLQ_RECORDS = Counter(
    "spanline_dlq_records_total", "Records sent to a dead-letter topic", ["topic", "reason"]
)
RETRIES = Counter("spanline_processing_retries_total", "Batches retried because a dependency was unavailable")
PAUSED = Gauge("spanline_kafka_consumer_paused", "1 while consumption is paused for back-pressure")
LAG = Gauge("spanline_kafka_consumer_lag", "Records behind the high watermark", ["topic", "partition"])
BATCH_SIZE = Histogram(
    "spanline_batch_records",
    "Records per processed batch",
    buckets=(1, 10, 50, 100, 500, 1000, 5000, 10000, 50000),
)
BATCH_SECONDS = Histogram(
    "spanline_batch_seconds",
    "Processing + produce + commit time of one batch",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def create_consumer_series(topics: Iterable[str]) -> None:
    """A consumer's dead-letter series at 0, for each topic it reads and every reason."""
    create_series(DLQ_RECORDS, [dlq_topic(t) for t in topics], DlqReason)
