"""A commit writes its partitions from slices of the batch (data_files.append_runs) and the
coldtier gives free heap back once nothing is queued behind a commit."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from spanline.coldtier import service as cold_service
from spanline.coldtier.commit import append_batch
from spanline.coldtier.governance import GovernanceStore
from spanline.coldtier.offsets import table_offsets
from spanline.coldtier.service import ColdStrategy
from spanline.coldtier.tables import SPANS, ensure_tables, open_catalog, to_iceberg_arrow
from spanline.core.kafka.records import InMessage
from spanline.settings import Settings, load_settings
from spanline.spans.pricing import PricingTable
from spanline.spans.rows import SpanRows
from tests.integration.coldtier.conftest import trace_value

DAY_NS = 86_400 * 10**9
T0 = 1_750_000_000 * 10**9


def _settings(tmp_path: Any) -> Settings:
    return load_settings(None, data_dir=str(tmp_path))


def _mixed_batch() -> Any:
    """Three projects over two days, in arrival order (not sorted)."""
    rows = SpanRows(PricingTable.load(None), None)
    for i in range(12):
        project = ("p1", "p2", "p3")[i % 3]
        rows.add_bytes(trace_value(os.urandom(16), 2, t0=T0 + (i % 2) * DAY_NS), project, 1)
    return rows.take()


def _files(table: Any) -> list[tuple[tuple[object, ...], int]]:
    table.refresh()
    files = table.inspect.data_files().select(["partition", "record_count"]).to_pylist()
    return sorted((tuple(f["partition"].values()), f["record_count"]) for f in files)


def test_same_files_and_rows_as_pyiceberg_append(tmp_path: Any) -> None:
    s = _settings(tmp_path)
    catalog, tables = ensure_tables(s)
    ours = tables["spans"]
    theirs = catalog.create_table(
        (s.coldtier.namespace, "spans_reference"),
        schema=ours.schema(),
        partition_spec=ours.spec(),
        properties=ours.properties,
    )
    data = to_iceberg_arrow(_mixed_batch(), SPANS)
    append_batch(ours, "spans", data, {"t": {0: 12}}, retries=1)
    theirs.append(data)
    assert _files(ours) == _files(theirs)
    assert len(_files(ours)) == 6  # one file per (day, project)
    assert ours.scan().to_arrow().sort_by("span_id").equals(theirs.scan().to_arrow().sort_by("span_id"))
    assert table_offsets(ours) == {"t": {0: 12}}
    reloaded = open_catalog(s).load_table((s.coldtier.namespace, "spans"))
    assert reloaded.scan(row_filter="project_id == 'p2'").to_arrow().num_rows == 8


def _msgs(s: Settings, start: int, n: int) -> list[InMessage]:
    return [
        InMessage(s.topics.redacted, 0, start + i, b"k", trace_value(os.urandom(16), 2), [], 0)
        for i in range(n)
    ]


def test_free_heap_released_only_when_no_batch_waits(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _settings(tmp_path)
    _, tables = ensure_tables(s)
    strategy = ColdStrategy(s, tables, GovernanceStore.from_settings(s))
    released: list[int] = []
    monkeypatch.setattr(cold_service, "release_free_heap", lambda: released.append(strategy.commits) or True)

    async def two_in_flight() -> None:
        await asyncio.gather(strategy.process(_msgs(s, 0, 3)), strategy.process(_msgs(s, 3, 3)))

    asyncio.run(two_in_flight())
    # the first commit had the second batch queued behind it: only the last one releases
    assert released == [2]
    asyncio.run(strategy.process(_msgs(s, 6, 3)))
    assert released == [2, 3]
