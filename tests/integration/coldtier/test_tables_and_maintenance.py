"""Iceberg tables, commits and maintenance with pyiceberg on a temp dir (no broker)."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from spanline.coldtier import metrics
from spanline.coldtier.commit import append_batch
from spanline.coldtier.governance import GovernanceStore, HoldActive
from spanline.coldtier.maintenance import run_maintenance
from spanline.coldtier.offsets import table_offsets
from spanline.coldtier.service import ColdStrategy
from spanline.coldtier.storage import list_files, open_fs
from spanline.coldtier.tables import SPANS, ensure_tables, open_catalog, to_iceberg_arrow
from spanline.core.kafka.records import InMessage
from spanline.settings import ConfigError, Settings, load_settings
from spanline.spans.pricing import PricingTable
from spanline.spans.rows import SpanRows
from tests.integration.coldtier.conftest import trace_value

DAY_NS = 86_400 * 10**9


def _settings(tmp_path: Any, **cold: Any) -> Settings:
    return load_settings(
        None, data_dir=str(tmp_path), coldtier={"orphan_min_age_s": 0, "snapshot_keep_s": 0, **cold}
    )


def _batch(n_traces: int, *, project: str = "p1", t0: int | None = None, user: str = "u-1") -> Any:
    rows = SpanRows(PricingTable.load(None), None)
    for _ in range(n_traces):
        rows.add_bytes(trace_value(os.urandom(16), 3, user=user, t0=t0), project, 1)
    return to_iceberg_arrow(rows.take(), SPANS)


def _msgs(settings: Settings, n: int, t0: int | None = None) -> list[InMessage]:
    return [
        InMessage(
            settings.topics.redacted,
            0,
            i,
            b"k",
            trace_value(os.urandom(16), 2, t0=t0),
            [("spanline-project", b"p1")],
            0,
        )
        for i in range(n)
    ]


def test_commit_conflict_is_retried_and_offsets_merge(tmp_path: Any) -> None:
    s = _settings(tmp_path)
    _, tables = ensure_tables(s)
    stale = tables["spans"]
    other = open_catalog(s).load_table((s.coldtier.namespace, "spans"))
    append_batch(other, "spans", _batch(2), {"t": {1: 10}}, retries=3)
    before = metrics.COMMIT_CONFLICTS.labels("spans")._value.get()
    result = append_batch(stale, "spans", _batch(3), {"t": {0: 5}}, retries=3)
    assert result.conflicts == 1
    assert metrics.COMMIT_CONFLICTS.labels("spans")._value.get() == before + 1
    stale.refresh()
    assert stale.scan().to_arrow().num_rows == 15
    assert table_offsets(stale) == {"t": {0: 5, 1: 10}}


def test_compaction_keeps_rows_cuts_files_and_carries_offsets(tmp_path: Any) -> None:
    s = _settings(tmp_path, compact_min_files=3)
    _, tables = ensure_tables(s)
    strategy = ColdStrategy(s, tables, GovernanceStore.from_settings(s))
    msgs = _msgs(s, 12)
    for i in range(0, 12, 2):
        asyncio.run(strategy.process(msgs[i : i + 2]))
    t = tables["spans"]
    t.refresh()
    assert len(t.inspect.data_files()) == 6
    report = run_maintenance(s, tables, GovernanceStore.from_settings(s))
    assert report.total("compact", "files_before") == 6
    assert report.total("compact", "files_after") == 1
    assert report.total("orphans", "orphans_removed") > 0
    t.refresh()
    assert t.scan().to_arrow().num_rows == 24
    assert table_offsets(t) == {s.topics.redacted: {0: 12}}
    fs, root = open_fs(t.location())
    parquet = [f for f in list_files(fs, root) if f.path.endswith(".parquet")]
    assert len(parquet) == 1, "expired + orphan removal must leave only the compacted file"


def test_retention_drops_whole_days_metadata_only_and_hold_blocks_it(tmp_path: Any) -> None:
    s = _settings(tmp_path)
    gov = GovernanceStore.from_settings(s)
    _, tables = ensure_tables(s)
    t = tables["spans"]
    old_ns = int((datetime.now(UTC) - timedelta(days=200)).timestamp()) * 10**9
    append_batch(t, "spans", _batch(2, project="p1", t0=old_ns), {}, 1)
    append_batch(t, "spans", _batch(2, project="held", t0=old_ns), {}, 1)
    append_batch(t, "spans", _batch(2, project="p1"), {}, 1)
    gov.set_hold("held", "litigation 42", None, "legal@example")
    report = run_maintenance(s, tables, gov, steps=("retention",))
    ret = next(r for r in report.steps if r.table == "spans")
    assert ret.items.get("files_dropped") == 1
    assert ret.items.get("files_written", 0) == 0, "whole-day retention must not rewrite files"
    t.refresh()
    projects = t.scan(selected_fields=("project_id",)).to_arrow().column("project_id").to_pylist()
    assert projects.count("held") == 6 and projects.count("p1") == 6
    snap = t.current_snapshot()
    assert snap is not None and snap.summary is not None
    assert snap.summary.operation.value == "delete"
    with pytest.raises(HoldActive, match="held"):
        gov.check_no_hold({"held"}, "erasure")
    assert gov.release_hold("held", "legal@example", "case closed")
    report = run_maintenance(s, tables, gov, steps=("retention",))
    t.refresh()
    assert t.scan().to_arrow().num_rows == 6
    events = [r["event"] for r in gov.audit_records()]
    assert events.count("hold_set") == 1 and events.count("hold_released") == 1


def test_cold_days_floor() -> None:
    with pytest.raises(ConfigError, match="below the 183-day floor"):
        load_settings(None, retention={"cold_days": 90})
    with pytest.raises(ConfigError, match="reason"):
        load_settings(None, retention={"cold_days": 90, "allow_below_floor": True})
    ok = load_settings(
        None, retention={"cold_days": 90, "allow_below_floor": True, "below_floor_reason": "not high-risk"}
    )
    assert ok.retention.cold_days == 90


def test_stats_off_for_subject_columns(tmp_path: Any) -> None:
    s = _settings(tmp_path)
    _, tables = ensure_tables(s)
    t = tables["spans"]
    append_batch(t, "spans", _batch(2, user="victim-7"), {}, 1)
    entry = next(iter(t.scan().plan_files()))
    uid = t.schema().find_field("user_id").field_id
    assert uid not in (entry.file.lower_bounds or {}) and uid not in (entry.file.upper_bounds or {})
    meta = pq.ParquetFile(entry.file.file_path.removeprefix("file://")).metadata
    assert meta.num_rows == 6


def test_a_later_batch_never_commits_before_a_failed_earlier_one(tmp_path: Any) -> None:
    """Storage fails for real (the table's data directory replaced by a file): the batch is
    retried, and the next batch waits instead of committing offsets past it."""
    from spanline.core.kafka import RetryableError

    s = _settings(tmp_path)
    _, tables = ensure_tables(s)
    strategy = ColdStrategy(s, tables, GovernanceStore.from_settings(s))
    msgs = _msgs(s, 4)
    first, second = msgs[:2], msgs[2:]
    data_dir = Path(tables["spans"].location().removeprefix("file://")) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.rmdir()
    data_dir.write_bytes(b"not a directory")

    async def scenario() -> None:
        with pytest.raises(RetryableError):
            await strategy.process(first)
        with pytest.raises(RetryableError, match="earlier batch"):
            await strategy.process(second)
        data_dir.unlink()
        await strategy.process(first)
        await strategy.process(second)

    asyncio.run(scenario())
    t = tables["spans"]
    t.refresh()
    assert t.scan().to_arrow().num_rows == 8
    assert table_offsets(t) == {s.topics.redacted: {0: 4}}
    ops = [
        snap.summary.additional_properties["spanline.kafka.offsets"] for snap in t.snapshots() if snap.summary
    ]
    assert ops == ['{"' + s.topics.redacted + '":{"0":2}}', '{"' + s.topics.redacted + '":{"0":4}}']


def test_an_unexpected_error_dead_letters_its_message_and_keeps_the_batch(tmp_path: Any) -> None:
    """A message whose build fails with something other than a parse error (after it
    added rows) is dead-lettered inside the batch; none of its rows reach Iceberg and the
    others commit with the batch's offsets, in the batch's place in the commit order."""
    s = _settings(tmp_path)
    _, tables = ensure_tables(s)
    strategy = ColdStrategy(s, tables, GovernanceStore.from_settings(s))
    msgs = _msgs(s, 3)
    bad = msgs[1].value
    real_add = strategy._spans.add_bytes

    def add_then_fail(value: bytes, project: str, received_ns: int) -> int:
        added = real_add(value, project, received_ns)
        if value == bad:
            raise RuntimeError("builder bug")
        return added

    strategy._spans.add_bytes = add_then_fail  # type: ignore[method-assign]
    outcome = asyncio.run(strategy.process(msgs))
    assert [(e.message.offset, e.reason) for e in outcome.dlq] == [(1, "processing_error")]
    t = tables["spans"]
    t.refresh()
    assert t.scan().to_arrow().num_rows == 4
    assert table_offsets(t) == {s.topics.redacted: {0: 3}}


def test_below_floor_override_is_logged_at_start(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    from spanline.coldtier.service import ColdtierService

    s = load_settings(
        None,
        data_dir=str(tmp_path),
        retention={"cold_days": 90, "allow_below_floor": True, "below_floor_reason": "not high-risk"},
    )
    caplog.set_level("WARNING", logger="spanline.coldtier.service")
    asyncio.run(ColdtierService(s).start())
    hits = [r for r in caplog.records if "below the legal floor" in r.getMessage()]
    assert hits and getattr(hits[0], "reason", None) == "not high-risk"
    assert getattr(hits[0], "cold_days", None) == 90


class _RecordingProducer:
    """Stands in for the Kafka producer: records what was sent and how many rows Iceberg
    held at that moment, or fails like an unreachable broker."""

    def __init__(self, table: Any, fail: bool = False) -> None:
        self.table = table
        self.fail = fail
        self.sent: list[tuple[bytes, int]] = []

    async def send_all(self, records: list[Any]) -> None:
        from spanline.core.kafka import ProduceError

        if self.fail:
            raise ProduceError("timeout", "broker down")
        self.table.refresh()
        self.sent += [(r.value, self.table.scan().to_arrow().num_rows) for r in records]


def test_dead_letters_are_acknowledged_before_the_iceberg_commit(tmp_path: Any) -> None:
    """The snapshot takes the dead-lettered message's offset, and a restart resumes past it:
    its dead letter must be in Kafka before that commit, or a crash in between loses it."""
    from spanline.core.kafka import RetryableError

    s = _settings(tmp_path)
    _, tables = ensure_tables(s)
    msgs = _msgs(s, 3)
    msgs[1].value = b"\xff\x00 not protobuf"
    down = _RecordingProducer(tables["spans"], fail=True)
    strategy = ColdStrategy(s, tables, GovernanceStore.from_settings(s), down)  # type: ignore[arg-type]
    with pytest.raises(RetryableError, match="dead letters"):
        asyncio.run(strategy.process(msgs))
    tables["spans"].refresh()
    assert tables["spans"].current_snapshot() is None  # nothing committed without the DLQ

    up = _RecordingProducer(tables["spans"])
    strategy.producer = up  # type: ignore[assignment]
    outcome = asyncio.run(strategy.process(msgs))
    assert up.sent == [(msgs[1].value, 0)]  # sent while Iceberg held none of the batch
    assert outcome.dlq == []  # already sent: the consumer must not send it again
    tables["spans"].refresh()
    assert tables["spans"].scan().to_arrow().num_rows == 4
    assert table_offsets(tables["spans"]) == {s.topics.redacted: {0: 3}}
