"""Appending one micro-batch to an Iceberg table, with its Kafka offsets, conflict-safe.

A commit conflict (another writer or maintenance swapped the metadata first) is retried
on fresh metadata, re-merging the offsets from the new current snapshot, so concurrent
instances never roll each other's offsets back.

Each attempt first checks that the snapshot it commits on does not hold any of the batch
yet (:class:`AlreadyStored`). An instance the consumer group has replaced may still be
finishing a batch its successor has stored; its copy of the metadata is stale, so its
own checks before the commit passed, but the catalog refuses a commit on stale metadata,
and the retry sees the successor's offsets. The check and the commit then act on the same
metadata, which is what fences the replaced instance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from spanline.coldtier import metrics
from spanline.coldtier.data_files import append_runs
from spanline.coldtier.offsets import Offsets, overlaps, summary_properties, table_offsets

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table

log = logging.getLogger(__name__)
T = TypeVar("T")


class CommitConflictsExhausted(Exception):
    """Still conflicting after the configured retries."""


class AlreadyStored(Exception):
    """The table's current snapshot holds messages of the batch (another instance stored
    them): nothing was committed; the caller leaves those messages out and commits again."""


@dataclass(frozen=True, slots=True)
class CommitResult:
    rows: int
    snapshot_id: int | None
    conflicts: int
    seconds: float


def retry_on_conflict(table: Table, name: str, retries: int, attempt: Callable[[], T]) -> tuple[T, int]:
    """Run ``attempt`` until it commits; on a conflict refresh ``table`` and try again."""
    from pyiceberg.exceptions import CommitFailedException

    conflicts = 0
    while True:
        try:
            return attempt(), conflicts
        except CommitFailedException:
            conflicts += 1
            metrics.COMMIT_CONFLICTS.labels(name).inc()
            if conflicts > retries:
                raise CommitConflictsExhausted(f"{name}: {conflicts} commit conflicts in a row") from None
            log.info("iceberg commit conflict; retrying on fresh metadata", extra={"table": name})
            time.sleep(min(0.05 * conflicts, 1.0))
            table.refresh()


def append_batch(
    table: Table,
    name: str,
    data: pa.Table,
    offsets: Mapping[str, Mapping[int, int]],
    retries: int,
    first: Offsets | None = None,
) -> CommitResult:
    """Append ``data`` with the batch's next ``offsets``; ``first``: the batch's lowest
    offset per partition, checked against the snapshot each attempt commits on."""
    started = time.monotonic()

    def attempt() -> None:
        if first and overlaps(table_offsets(table), first):
            raise AlreadyStored(name)
        append_runs(table, data, summary_properties(table, offsets))

    _, conflicts = retry_on_conflict(table, name, retries, attempt)
    seconds = time.monotonic() - started
    snap = table.current_snapshot()
    metrics.COMMIT_SECONDS.labels(name).observe(seconds)
    metrics.ROWS_COMMITTED.labels(name).inc(data.num_rows)
    metrics.BYTES_COMMITTED.labels(name).inc(data.nbytes)
    return CommitResult(data.num_rows, snap.snapshot_id if snap else None, conflicts, seconds)
