"""Prometheus metrics of the writer's storage side (names prefixed ``spanline_writer_``).

Labels are bounded: table names, a canonical provider set, an outcome enum. Never ids,
models as free text, or payload values.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from prometheus_client import Counter, Histogram

from spanline.core.metric_series import create_series


class InsertOutcome(StrEnum):
    """The ``outcome`` label of ``spanline_writer_insert_failures_total``."""

    RETRIED = "retried"  # one attempt failed; the next one may succeed
    UNAVAILABLE = "unavailable"  # ClickHouse unreachable after every retry: the batch is replayed
    REJECTED = "rejected"  # ClickHouse refused the batch or the schema: no retry can fix it


ROWS_WRITTEN = Counter("spanline_writer_rows_written_total", "Rows inserted into ClickHouse", ["table"])
BYTES_WRITTEN = Counter(
    "spanline_writer_bytes_written_total", "Arrow bytes inserted into ClickHouse (uncompressed)", ["table"]
)
INSERT_SECONDS = Histogram(
    "spanline_writer_insert_seconds",
    "Latency of one successful insert, retries included",
    ["table"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
INSERT_BATCH_ROWS = Histogram(
    "spanline_writer_insert_batch_rows",
    "Rows per insert",
    ["table"],
    buckets=(1, 10, 100, 1_000, 5_000, 10_000, 50_000, 100_000, 500_000),
)
INSERT_FAILURES = Counter(
    "spanline_writer_insert_failures_total",
    "Failed insert attempts by outcome (retried, unavailable after retries, rejected)",
    ["table", "outcome"],
)
QUERIES = Counter(
    "spanline_query_requests_total", "Queries served by the local read-only endpoint", ["outcome"]
)


def create_known_series(tables: Iterable[str]) -> None:
    """Insert-failure series at 0 from start-up, so the first failure is an increase."""
    create_series(INSERT_FAILURES, tables, InsertOutcome)
