"""Migrations, inserts and replay dedupe on the embedded engine (chdb)."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

from spanline.core.broker import free_port
from spanline.query.readonly import run_readonly
from spanline.spans.pricing import PricingTable
from spanline.spans.rows import AlertRows, AuditRows, LogRows, ScoreRows, SpanRows
from spanline.v1.spanline_pb2 import AlertEvent, AuditCount, Score
from spanline.writer.migrate import MigrationError, applied_versions, apply_migrations
from spanline.writer.store import (
    ClickHouseStore,
    RetryPolicy,
    StoreRejected,
    StoreUnavailable,
    connect,
)
from tests.integration.writer.conftest import scalar
from tests.integration.writer.otlp import T0, traces

pytestmark = pytest.mark.integration

TABLES = ("spans", "logs", "scores", "alerts", "audit")


def test_migrations_idempotent_with_ttl_and_indexes(store: ClickHouseStore) -> None:
    c, db = store.client, store.database
    assert sorted(applied_versions(c, db)) == [1, 2]
    assert apply_migrations(c, db, 7) == []  # second run: nothing to do
    assert scalar(c, f"SELECT count() FROM {db}.schema_migrations FINAL") == 2
    rows = c.query(
        "SELECT name, engine, sorting_key, partition_key, create_table_query FROM system.tables "
        "WHERE database = {db:String}",
        parameters={"db": db},
    ).result_rows
    info = {r[0]: r[1:] for r in rows}
    for table in TABLES:
        engine, sorting, partition, ddl = info[table]
        assert engine == "ReplacingMergeTree", table
        assert sorting.startswith("project_id"), table
        assert partition.startswith("toYYYYMM("), table
        assert "TTL toDateTime(" in ddl, table  # DELETE is the default action, not echoed back
    assert "TTL toDateTime(start_time) + toIntervalDay(7)" in info["spans"][3]
    assert info["spans"][1] == "project_id, toStartOfHour(start_time), trace_id, span_id"
    assert "toIntervalDay(183)" in info["audit"][3]  # compliance records outlive the hot window
    assert "CODEC(ZSTD(3))" in info["spans"][3]
    for table in ("spans", "logs"):  # 0002: inserts of up to 256 MB write one compact part
        assert "min_bytes_for_wide_part = 268435456" in info[table][3], table
    indexes = c.query(
        "SELECT name, type FROM system.data_skipping_indices "
        "WHERE database = {db:String} AND table = 'spans'",
        parameters={"db": db},
    ).result_rows
    kinds = dict(indexes)
    assert kinds["idx_trace_id"] == "bloom_filter"
    assert kinds["idx_attr_keys"] == "bloom_filter" and kinds["idx_attr_values"] == "bloom_filter"


def test_changed_hot_window_alters_ttl(store: ClickHouseStore) -> None:
    apply_migrations(store.client, store.database, 45)
    ddl = scalar(
        store.client,
        "SELECT create_table_query FROM system.tables "
        f"WHERE database = '{store.database}' AND name = 'spans'",
    )
    assert "toIntervalDay(45)" in ddl


def test_changed_migration_file_is_refused(store: ClickHouseStore) -> None:
    c, db = store.client, store.database
    c.command(
        f"INSERT INTO {db}.schema_migrations VALUES (1, 'init', 'not-the-checksum', now64(3) + 1)",
    )
    with pytest.raises(MigrationError, match="changed after it was applied"):
        apply_migrations(c, db, 7)


def _span_batch(n: int, received_at: int, attrs: dict[str, object] | None = None) -> pa.Table:
    buf = SpanRows(PricingTable.load())
    for t in range(n):
        tid = (t + 1).to_bytes(16, "big")
        buf.add(
            traces(
                tid,
                [
                    {"span_id": 1, "name": "agent", "dur_ms": 50},
                    {
                        "span_id": 2,
                        "parent": 1,
                        "name": "chat",
                        "start_ms": 1,
                        "dur_ms": 20,
                        "attrs": attrs or {},
                    },
                ],
            ),
            "proj",
            received_at,
        )
    return buf.take()


def test_replayed_spans_collapse_under_final(store: ClickHouseStore) -> None:
    c, db = store.client, store.database
    genai = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": 2000,
        "gen_ai.usage.output_tokens": 100,
    }
    batch = _span_batch(50, T0 + 1, genai)
    store.insert("spans", batch)
    store.insert("spans", batch)  # a replay: same rows again
    store.insert("spans", _span_batch(50, T0 + 2, genai))  # re-sent later: newer version
    assert scalar(c, f"SELECT count() FROM {db}.spans") == 300
    assert scalar(c, f"SELECT count() FROM {db}.spans FINAL") == 100
    result = run_readonly(c, f"SELECT count(), uniqExact(trace_id, span_id) FROM {db}.spans")
    assert result.rows == [[100, 100]]  # the query surface dedupes by default
    newest = scalar(c, f"SELECT min(toUnixTimestamp64Nano(ingested_at)) FROM {db}.spans FINAL")
    assert newest == T0 + 2
    cost = c.query(
        f"SELECT provider, response_model, input_tokens, cost_usd FROM {db}.spans FINAL "
        "WHERE name = 'chat' LIMIT 1"
    ).result_rows[0]
    assert cost[:3] == ("openai", "gpt-4o-mini-2024-07-18", 2000)
    assert cost[3] == pytest.approx((2000 * 0.15 + 100 * 0.6) / 1e6)
    c.command(f"OPTIMIZE TABLE {db}.spans FINAL")
    assert scalar(c, f"SELECT count() FROM {db}.spans") == 100  # merges make it physical


def test_duplicates_within_one_batch_collapse_on_read(store: ClickHouseStore) -> None:
    """Inserts skip the insert-time replacing merge (optimize_on_insert = 0, half the insert
    CPU): a batch repeating a span keeps both copies until a merge, and FINAL reads show one."""
    c, db = store.client, store.database
    batch = _span_batch(10, T0 + 1)
    store.insert("spans", pa.concat_tables([batch, batch]))
    assert scalar(c, f"SELECT count() FROM {db}.spans") == 40
    assert scalar(c, f"SELECT count() FROM {db}.spans FINAL") == 20
    assert run_readonly(c, f"SELECT count() FROM {db}.spans").rows == [[20]]


def test_other_tables_collapse_replays(store: ClickHouseStore) -> None:
    c, db = store.client, store.database
    tid = os.urandom(16)
    scores = ScoreRows()
    scores.add(
        Score(score_id="s-1", trace_id=tid, name="relevance", score_value=0.4, time_unix_nano=T0), "p", T0
    )
    scores.add(
        Score(score_id="s-2", trace_id=tid, name="toxicity", score_value=0.0, time_unix_nano=T0), "p", T0
    )
    s_batch = scores.take()
    rescored = ScoreRows()  # same score id, re-emitted later with a new timestamp
    rescored.add(
        Score(score_id="s-1", trace_id=tid, name="relevance", score_value=0.6, time_unix_nano=T0 + 10**9),
        "p",
        T0 + 5,
    )
    alerts = AlertRows()
    alerts.add(AlertEvent(fingerprint="f", rule="r", state=AlertEvent.FIRING, time_unix_nano=T0), "p", T0)
    audit = AuditRows()
    count = AuditCount(
        detector="email", action="mask", count=3, window_start_unix_nano=T0, window_end_unix_nano=T0 + 1
    )
    audit.add(count, "p", T0, "spanline.audit/0/1")
    a_batch = audit.take()
    other_replica = AuditRows()
    other_replica.add(count, "p", T0, "spanline.audit/1/1")
    from opentelemetry.proto.logs.v1.logs_pb2 import LogsData

    logs = LogsData()
    rec = logs.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=T0, trace_id=tid)
    rec.body.string_value = "event"
    lbuf = LogRows()
    lbuf.add(logs, "p", T0)
    l_batch = lbuf.take()
    a_events = alerts.take()
    for table, batch in (("scores", s_batch), ("alerts", a_events), ("audit", a_batch), ("logs", l_batch)):
        store.insert(table, batch)
        store.insert(table, batch)
    store.insert("scores", rescored.take())
    store.insert("audit", other_replica.take())
    assert c.query(f"SELECT score_id, score_value FROM {db}.scores FINAL ORDER BY score_id").result_rows == [
        ("s-1", 0.6),
        ("s-2", 0.0),
    ]
    assert scalar(c, f"SELECT count() FROM {db}.alerts FINAL") == 1
    assert scalar(c, f"SELECT sum(count) FROM {db}.audit FINAL") == 6  # two replicas, each once
    assert scalar(c, f"SELECT count() FROM {db}.logs FINAL") == 1


def test_rejected_batch_is_permanent(store: ClickHouseStore) -> None:
    with pytest.raises(StoreRejected):
        store.insert("spans", pa.table({"no_such_column": ["x"]}))
    with pytest.raises(ValueError, match="unknown table"):
        store.insert("nope", pa.table({"a": [1]}))


def test_unavailable_after_retries(chdb_dsn: str, database: str) -> None:
    st = ClickHouseStore(connect(chdb_dsn), database, dsn=chdb_dsn, retry=RetryPolicy(2, 0.01, 0.02))
    slept: list[float] = []
    st._sleep = slept.append
    st.client.close()  # the engine handle is gone: every attempt fails
    with pytest.raises(StoreUnavailable, match="after 3 attempts"):
        st.insert("spans", _span_batch(1, T0))
    assert slept == [0.01, 0.02]


def test_unreachable_server_is_unavailable_not_a_crash() -> None:
    port = free_port()
    with pytest.raises(StoreUnavailable) as err:
        connect(f"http://writer:hunter2@127.0.0.1:{port}/", timeout_s=2)
    assert "hunter2" not in str(err.value) and "********" in str(err.value)
