"""Audit archives cover the whole range: every cold row plus the hot rows the cold tier does
not hold yet, each span once (chdb + Iceberg on a temp dir), offline and with a running
writer that owns the embedded hot store."""

from __future__ import annotations

import base64
import json
import os
import tarfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bagit
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spanline.cli.main import main
from spanline.coldtier import archive
from spanline.coldtier.commit import append_batch
from spanline.coldtier.tables import SPANS, ensure_tables, to_iceberg_arrow
from spanline.core.broker import free_port
from spanline.settings import Settings, load_settings
from spanline.spans.pricing import PricingTable
from spanline.spans.rows import SpanRows
from spanline.writer.store import ClickHouseStore, open_store
from tests.integration.coldtier.conftest import trace_value
from tests.integration.coldtier.running_writer import running_writer

DAY_NS = 86_400 * 10**9


def _spans(days_ago: float, n_traces: int, project: str = "p1") -> pa.Table:
    rows = SpanRows(PricingTable.load(None), None)
    for _ in range(n_traces):
        t0 = time.time_ns() - int(days_ago * DAY_NS)
        rows.add_bytes(trace_value(os.urandom(16), 2, t0=t0), project, t0)
    return rows.take()


def _keys(data: pa.Table) -> list[tuple[str, str]]:
    return list(zip(data.column("trace_id").to_pylist(), data.column("span_id").to_pylist(), strict=True))


def _fill(settings: Settings, store: ClickHouseStore) -> tuple[list[tuple[str, str]], int, int]:
    """Spans in both tiers, in the hot tier only (cold lagging), in the cold tier only
    (older than the hot window, and one the hot store lost), another project's; returns the
    p1 span keys an archive must hold and how many come from each tier."""
    both, hot_only = _spans(2, 2), _spans(1, 2)
    cold_old, cold_only = _spans(40, 1), _spans(1, 1)
    _, tables = ensure_tables(settings)
    cold = pa.concat_tables([both, cold_old, cold_only])
    append_batch(tables["spans"], "spans", to_iceberg_arrow(cold, SPANS), {}, 1)
    append_batch(tables["spans"], "spans", to_iceberg_arrow(both, SPANS), {}, 1)  # a replayed copy
    for data in (both, hot_only, _spans(1, 2, project="p2")):
        store.insert("spans", data)
    expected = _keys(both) + _keys(hot_only) + _keys(cold_old) + _keys(cold_only)
    return sorted(expected), cold.num_rows, hot_only.num_rows


def _bag_keys(bag: Path) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    for f in sorted((bag / "data" / "spans").glob("*.parquet")):
        data = pq.read_table(f)
        assert set(data.column("project_id").to_pylist()) == {"p1"}
        keys += _keys(data)
    return sorted(keys)


def _statement(bag: Path) -> dict[str, Any]:
    env = json.loads((bag / archive.ENVELOPE).read_text())
    return dict(json.loads(base64.b64decode(env["payload"]))["predicate"])


def _range() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(days=45), now + timedelta(hours=1)


def test_offline_export_takes_cold_rows_and_the_hot_rows_not_yet_cold(tmp_path: Path) -> None:
    s = load_settings(None, data_dir=str(tmp_path / "data"))
    store = open_store(s)
    try:
        expected, n_cold, n_hot = _fill(s, store)
    finally:
        store.close()  # offline: the export opens the hot store itself
    priv, pub, _ = archive.keygen(str(tmp_path / "key"))
    start, end = _range()
    bag = tmp_path / "bag"
    result = archive.export(
        s, project="p1", start=start, end=end, tables=["spans", "scores"], key_path=priv, out=bag
    )
    assert result.records == {"spans": len(expected), "scores": 0}
    assert result.by_tier["spans"] == {"cold": n_cold, "hot": n_hot}
    assert _bag_keys(bag) == expected  # each span once: no duplicate, none missing
    predicate = _statement(bag)
    assert predicate["records"] == {"spans": len(expected), "scores": 0}
    assert predicate["records_by_tier"]["spans"] == {"cold": n_cold, "hot": n_hot}
    assert archive.verify(bag, archive.load_public(pub)) == []
    bagit.Bag(str(bag)).validate()


def test_export_under_a_running_writer_reads_hot_rows_through_the_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    s = load_settings(
        None, data_dir=str(tmp_path / "data"), coldtier={"erasure_poll_s": 0.1}, writer={"query_port": port}
    )
    store = open_store(s)
    expected, n_cold, n_hot = _fill(s, store)
    monkeypatch.setenv("SPANLINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPANLINE_WRITER_QUERY_PORT", str(port))

    def no_second_opener(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the export must not open the hot store the writer owns")

    with running_writer(s, store):
        monkeypatch.setattr("spanline.writer.store.connect", no_second_opener)
        priv, pub, _ = archive.keygen(str(tmp_path / "key"))
        start, end = _range()
        out = tmp_path / "a.tar"
        code = main([
            "archive", "export", "--project", "p1", "--from", start.isoformat(), "--to", end.isoformat(),
            "--key", str(priv), "--out", str(out), "--timeout", "60",
        ])  # fmt: skip
        assert code == 0, capsys.readouterr().err
        assert f"spans {n_cold} cold + {n_hot} hot" in capsys.readouterr().out
        assert main(["archive", "verify", str(out), "--pubkey", str(pub)]) == 0
    extracted = tmp_path / "x"
    with tarfile.open(out) as tar:
        tar.extractall(extracted, filter="data")
    bag = extracted / "a"
    assert _bag_keys(bag) == expected
    assert _statement(bag)["records_by_tier"]["spans"] == {"cold": n_cold, "hot": n_hot}
    bagit.Bag(str(bag)).validate()
