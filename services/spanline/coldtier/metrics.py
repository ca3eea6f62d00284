"""Prometheus metrics of the coldtier (names prefixed ``spanline_coldtier_``).

Labels are bounded: table names, maintenance step names, outcome enums. Never ids,
project names or payload values.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from spanline.core.metric_series import create_series

ROWS_COMMITTED = Counter("spanline_coldtier_rows_committed_total", "Rows committed to Iceberg", ["table"])
BYTES_COMMITTED = Counter(
    "spanline_coldtier_bytes_committed_total", "Arrow bytes committed to Iceberg (uncompressed)", ["table"]
)
COMMIT_SECONDS = Histogram(
    "spanline_coldtier_commit_seconds",
    "Latency of one Iceberg commit (write + catalog swap), conflict retries included",
    ["table"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
COMMIT_CONFLICTS = Counter(
    "spanline_coldtier_commit_conflicts_total", "Iceberg commits retried after a conflict", ["table"]
)
BATCHES_FENCED = Counter(
    "spanline_coldtier_batches_fenced_total",
    "Batches found partly or wholly stored by another instance at commit time (a rebalance "
    "replaced this one); those messages were left out",
)
ROWS_DROPPED_ERASED = Counter(
    "spanline_coldtier_rows_dropped_erased_total",
    "Replayed rows dropped because their subject is in the erasure ledger",
    ["table"],
)
FILES_PER_PARTITION = Histogram(
    "spanline_coldtier_files_per_partition",
    "Data files per (day, project) partition, observed at each maintenance run",
    ["table"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
MAINTENANCE_SECONDS = Histogram(
    "spanline_coldtier_maintenance_seconds",
    "Duration of one maintenance step",
    ["step"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800),
)
MAINTENANCE_ITEMS = Counter(
    "spanline_coldtier_maintenance_items_total",
    "What maintenance did: files compacted/written, snapshots expired, orphans removed, rows deleted",
    ["step", "item"],
)
MAINTENANCE_FAILURES = Counter(
    "spanline_coldtier_maintenance_failures_total", "Maintenance steps that failed", ["step"]
)
LAST_MAINTENANCE = Gauge(
    "spanline_coldtier_last_maintenance_timestamp_seconds", "When maintenance last completed"
)


def create_known_series(steps: Iterable[str]) -> None:
    """Maintenance-failure series at 0 from start-up, one per step."""
    create_series(MAINTENANCE_FAILURES, steps)
