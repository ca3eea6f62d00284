"""A commit writes its partitions from slices of the batch (data_files.append_runs) and the
coldtier gives free heap back once nothing is queued behind a commit."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from spanline.coldtier import service as cold_service
from spanline.coldtier.commit import append_batch
from spanline.coldtier.offsets import table_offsets
from spanline.coldtier.tables import SPANS, ensure_tables, open_catalog, to_iceberg_arrow
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


def test_the_service_trims_the_heap_when_no_batch_is_left(tmp_path: Any) -> None:
    """The shared consumer gives the free heap back once no batch is in flight or buffered
    (tests/integration/core: only then); the coldtier, whose batches are tens of MB, asks it to."""
    svc = cold_service.ColdtierService(_settings(tmp_path))
    asyncio.run(svc.start())
    assert svc.inner is not None and svc.inner.consumer.policy.release_heap_when_idle
