"""One query over both tiers on chdb: no span counted twice across the watermark, and a
stale higher-numbered metadata file on disk does not change the answer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from spanline.coldtier.commit import append_batch
from spanline.coldtier.crosstier import run_tier_query
from spanline.coldtier.tables import SPANS, ensure_tables, to_iceberg_arrow
from spanline.query.commands import run_trace
from spanline.settings import load_settings
from spanline.spans.pricing import PricingTable
from spanline.spans.rows import SpanRows
from tests.integration.coldtier.conftest import trace_value

_HOT_INSERT = """
import sys, pyarrow.parquet as pq
from spanline.settings import load_settings
from spanline.writer.store import open_store
store = open_store(load_settings(None, data_dir=sys.argv[1], retention={"hot_days": 7}))
store.insert("spans", pq.read_table(sys.argv[1] + "/hot.parquet"))
store.close()
"""


def test_all_tiers_counts_each_span_once_and_pins_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = load_settings(None, data_dir=str(tmp_path), retention={"hot_days": 7})
    now_ns = time.time_ns()
    recent = [trace_value(os.urandom(16), 3, t0=now_ns - 3600 * 10**9) for _ in range(5)]
    old = [trace_value(os.urandom(16), 3, t0=now_ns - 20 * 86_400 * 10**9) for _ in range(4)]
    rows = SpanRows(PricingTable.load(None), None)
    for v in recent + old:
        rows.add_bytes(v, "p1", 1)
    batch = rows.take()
    _, tables = ensure_tables(s)
    append_batch(tables["spans"], "spans", to_iceberg_arrow(batch.slice(0, 15), SPANS), {}, 1)
    append_batch(tables["spans"], "spans", to_iceberg_arrow(batch.slice(15), SPANS), {}, 1)
    # the hot tier holds every span too (as in production); written by another process, as
    # the writer would, so the engine directory is created without a user_files_path
    pq.write_table(batch, tmp_path / "hot.parquet")
    subprocess.run([sys.executable, "-c", _HOT_INSERT, str(tmp_path)], check=True, timeout=120)

    sql = "SELECT count() AS n, uniqExact(trace_id, span_id) AS u, sum(input_tokens) AS tok FROM spans"
    every = run_tier_query(s, sql, "all").rows[0]
    assert every[0] == every[1] == 27
    assert every[2] == 270
    assert run_tier_query(s, "SELECT count() FROM spans", "cold").rows[0][0] == 27
    by_tier = run_tier_query(
        s,
        "SELECT toStartOfDay(start_time) < toStartOfDay(now('UTC')) - INTERVAL 7 DAY AS older, count() "
        "FROM spans GROUP BY older ORDER BY older",
        "all",
    ).rows
    assert by_tier == [[0, 15], [1, 12]]

    # a stale metadata file (what a failed catalog swap leaves) numbered above the current one
    t = tables["spans"]
    t.refresh()
    first = t.metadata.metadata_log[0].metadata_file.removeprefix("file://")
    meta_dir = Path(first).parent
    (meta_dir / "99999-00000000-0000-0000-0000-000000000000.metadata.json").write_bytes(
        Path(first).read_bytes()
    )
    assert run_tier_query(s, "SELECT count() FROM spans", "cold").rows[0][0] == 27
    assert run_tier_query(s, sql, "all").rows[0][0] == 27

    # a trace only the cold tier holds is still found by `spanline trace`
    only_cold = os.urandom(16)
    rows.add_bytes(trace_value(only_cold, 2, t0=now_ns - 30 * 86_400 * 10**9), "p1", 1)
    t.refresh()
    append_batch(t, "spans", to_iceberg_arrow(rows.take(), SPANS), {}, 1)
    assert run_trace(s, only_cold.hex()) == 0
    assert only_cold.hex() in capsys.readouterr().out
