"""Cold-tier maintenance, in this order (docs/storage.md): compact, retention, expire, orphans.

pyiceberg 0.12 has no compaction and no orphan-file removal; both are done here with its
public API. Every commit made here carries the Kafka offsets forward (expiry drops the
snapshots that held them). Each step returns what it did, for the log, the metrics and
``spanline cold maintain``.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from spanline.coldtier import metrics
from spanline.coldtier.commit import retry_on_conflict
from spanline.coldtier.offsets import summary_properties
from spanline.coldtier.storage import list_files, open_fs, strip_scheme
from spanline.coldtier.tables import TABLES, ColdTable

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table

    from spanline.coldtier.governance import GovernanceStore
    from spanline.settings import Settings

log = logging.getLogger(__name__)

IDENTITY: dict[str, tuple[str, ...]] = {  # what one record is, per table
    "spans": ("project_id", "trace_id", "span_id"),
    "scores": ("project_id", "score_id"),
}


@dataclass
class StepReport:
    step: str
    table: str
    seconds: float = 0.0
    items: dict[str, int] = field(default_factory=dict)
    detail: str = ""

    def add(self, item: str, n: int) -> None:
        self.items[item] = self.items.get(item, 0) + n


@dataclass
class MaintenanceReport:
    steps: list[StepReport] = field(default_factory=list)

    def as_dict(self) -> list[dict[str, Any]]:
        return [asdict(s) for s in self.steps]

    def total(self, step: str, item: str) -> int:
        return sum(s.items.get(item, 0) for s in self.steps if s.step == step)


def expressions() -> Any:
    """pyiceberg's expression classes, untyped: their constructors confuse mypy (pydantic models
    with positional __init__ overloads)."""
    import pyiceberg.expressions as ex

    return ex


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _partition_filter(cold: ColdTable, day: date, project: str) -> BooleanExpression:
    ex = expressions()
    start, end = _day_bounds(day)
    return ex.And(  # type: ignore[no-any-return]
        ex.And(
            ex.GreaterThanOrEqual(cold.time_column, start.isoformat()),
            ex.LessThan(cold.time_column, end.isoformat()),
        ),
        ex.EqualTo("project_id", project),
    )


def partition_files(table: Table, cold: ColdTable) -> dict[tuple[date, str], list[int]]:
    """Sizes of the live data files per (day, project) partition."""
    files = table.inspect.data_files()
    out: dict[tuple[date, str], list[int]] = defaultdict(list)
    if files.num_rows == 0:
        return out
    parts = files.column("partition").to_pylist()
    sizes = files.column("file_size_in_bytes").to_pylist()
    day_key = f"{cold.time_column}_day"
    for part, size in zip(parts, sizes, strict=True):
        day = part[day_key]
        if isinstance(day, int):
            day = date(1970, 1, 1) + timedelta(days=day)
        out[(day, part["project_id"])].append(size)
    return out


def dedupe(data: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    """One row per identity, the latest ``ingested_at`` winning (what ReplacingMergeTree does)."""
    if data.num_rows < 2:
        return data
    ordered = data.sort_by([("ingested_at", "ascending")])
    ordered = ordered.append_column("__row", pa.array(range(ordered.num_rows), pa.int64()))
    last = ordered.group_by(list(keys), use_threads=False).aggregate([("__row", "max")])
    kept = ordered.take(last.column("__row_max"))
    return kept.drop_columns(["__row"])


def compact(settings: Settings, table: Table, cold: ColdTable, report: StepReport) -> None:
    c = settings.coldtier
    retries = c.commit_retries
    for (day, project), sizes in sorted(partition_files(table, cold).items()):
        metrics.FILES_PER_PARTITION.labels(cold.name).observe(len(sizes))
        small = [s for s in sizes if s < c.compact_max_file_bytes]
        if len(small) < c.compact_min_files:
            continue
        flt = _partition_filter(cold, day, project)

        def attempt(flt: BooleanExpression = flt) -> tuple[int, int]:
            data = table.scan(row_filter=flt).to_arrow()
            before = data.num_rows
            data = dedupe(data, IDENTITY[cold.name]).sort_by([(k, "ascending") for k in cold.sort_keys])
            with table.transaction() as tx:
                tx.overwrite(data, overwrite_filter=flt, snapshot_properties=summary_properties(table))
            return before, data.num_rows

        (before, after), _ = retry_on_conflict(table, cold.name, retries, attempt)
        report.add("partitions", 1)
        report.add("files_before", len(sizes))
        report.add("files_after", len(partition_files(table, cold).get((day, project), [])))
        report.add("bytes_before", sum(sizes))
        report.add("bytes_after", sum(partition_files(table, cold).get((day, project), [])))
        report.add("duplicates_removed", before - after)


def retention_cutoff(cold_days: int, now: datetime | None = None) -> datetime:
    """UTC midnight ``cold_days`` ago: whole days only, so the delete is metadata-only."""
    now = now or datetime.now(UTC)
    day = (now - timedelta(days=cold_days)).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def apply_retention(
    settings: Settings,
    table: Table,
    cold: ColdTable,
    held: set[str],
    report: StepReport,
    now: datetime | None = None,
) -> None:
    ex = expressions()
    cutoff = retention_cutoff(settings.retention.cold_days, now)
    flt: BooleanExpression = ex.LessThan(cold.time_column, cutoff.isoformat())
    if held:
        flt = ex.And(flt, ex.NotIn("project_id", held))
        report.add("projects_on_hold", len(held))
    before = table.current_snapshot()

    def attempt() -> None:
        with warnings.catch_warnings():  # "did not match any records" is the usual case
            warnings.simplefilter("ignore", UserWarning)
            table.delete(flt, snapshot_properties=summary_properties(table))

    retry_on_conflict(table, cold.name, settings.coldtier.commit_retries, attempt)
    after = table.current_snapshot()
    report.detail = f"cutoff {cutoff.isoformat()}"
    if after is not None and (before is None or after.snapshot_id != before.snapshot_id) and after.summary:
        props = after.summary.additional_properties
        report.add("files_dropped", int(props.get("deleted-data-files", 0)))
        report.add("files_written", int(props.get("added-data-files", 0)))
        report.add("rows_deleted", int(props.get("deleted-records", 0)))


def expire(table: Table, older_than: datetime, report: StepReport) -> None:
    current = table.current_snapshot()
    old = [
        s.snapshot_id
        for s in table.metadata.snapshots
        if s.timestamp_ms < older_than.timestamp() * 1000
        and (current is None or s.snapshot_id != current.snapshot_id)
    ]
    if old:
        table.maintenance.expire_snapshots().by_ids(old).commit()
    report.add("snapshots_expired", len(old))


def reachable_files(table: Table) -> set[str]:
    """Files the current metadata reaches, counting only live (ADDED/EXISTING) manifest
    entries: the erasing snapshot still lists the rewritten files as DELETED entries, and
    counting those would keep the erased bytes forever."""
    io = table.io
    keep = {strip_scheme(table.metadata_location)}
    keep.update(strip_scheme(m.metadata_file) for m in table.metadata.metadata_log)
    for snap in table.metadata.snapshots:
        keep.add(strip_scheme(snap.manifest_list))
        for manifest in snap.manifests(io):
            keep.add(strip_scheme(manifest.manifest_path))
            for entry in manifest.fetch_manifest_entry(io, discard_deleted=True):
                keep.add(strip_scheme(entry.data_file.file_path))
    return keep


def remove_orphans(settings: Settings, table: Table, min_age_s: float, report: StepReport) -> None:
    from spanline.coldtier.config import s3_properties

    table.refresh()
    fs, root = open_fs(table.location(), s3_properties(settings))
    keep = reachable_files(table)
    horizon = time.time() - min_age_s
    removed = 0
    freed = 0
    for f in list_files(fs, root):
        if f.path in keep or f.mtime_s > horizon:
            continue
        fs.delete_file(f.path)
        removed += 1
        freed += f.size
    report.add("orphans_removed", removed)
    report.add("bytes_freed", freed)


class MaintenanceStep(StrEnum):
    """The steps of :func:`run_maintenance`, in the order it runs them; also the ``step``
    label of the maintenance metrics."""

    COMPACT = "compact"
    RETENTION = "retention"
    EXPIRE = "expire"
    ORPHANS = "orphans"


def _timed(report: MaintenanceReport, step: str, table: str) -> StepReport:
    r = StepReport(step, table)
    report.steps.append(r)
    return r


def run_maintenance(
    settings: Settings,
    tables: dict[str, Table],
    governance: GovernanceStore,
    *,
    steps: tuple[str, ...] = tuple(MaintenanceStep),
    now: datetime | None = None,
) -> MaintenanceReport:
    c = settings.coldtier
    report = MaintenanceReport()
    held = governance.held_projects()
    for name, table in tables.items():
        cold = TABLES[name]
        table.refresh()
        for step in steps:
            r = _timed(report, step, name)
            started = time.monotonic()
            try:
                if step == MaintenanceStep.COMPACT:
                    compact(settings, table, cold, r)
                elif step == MaintenanceStep.RETENTION:
                    apply_retention(settings, table, cold, held, r, now)
                elif step == MaintenanceStep.EXPIRE:
                    expire(table, (now or datetime.now(UTC)) - timedelta(seconds=c.snapshot_keep_s), r)
                elif step == MaintenanceStep.ORPHANS:
                    remove_orphans(settings, table, c.orphan_min_age_s, r)
            except Exception as exc:
                metrics.MAINTENANCE_FAILURES.labels(step).inc()
                r.detail = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
                log.error(
                    "maintenance step failed",
                    extra={"step": step, "table": name, "error": type(exc).__name__},
                )
            r.seconds = round(time.monotonic() - started, 3)
            metrics.MAINTENANCE_SECONDS.labels(step).observe(r.seconds)
            for item, n in r.items.items():
                metrics.MAINTENANCE_ITEMS.labels(step, item).inc(n)
    metrics.LAST_MAINTENANCE.set_to_current_time()
    return report
