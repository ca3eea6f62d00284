"""Where an audit archive's rows come from: the cold tier, plus the hot tier for what the
cold tier does not hold yet.

The coldtier commits behind the writer (one micro-batch; more while it is stopped or
paused), and the hot TTL has deleted what is older than ``hot_days``. An export therefore
takes every cold row of the range and adds the hot rows whose identity (project, trace and
span; project and score) the cold tier lacks: a span only one tier has is not missed, a
span both have is counted once, whatever the lag (a per-day boundary could not promise
that: a late span lands in an old day). Only identities go to the hot side and only the
missing rows come back.

The hot read runs in the process that owns the hot store: a running writer (``spanline
up``; a job in the governance store, coldtier/jobs.py) or, offline or with a server DSN,
this one.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spanline.coldtier.maintenance import IDENTITY, dedupe, expressions
from spanline.coldtier.tables import TABLES, ColdTable, to_iceberg_arrow

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from spanline.coldtier.governance import GovernanceStore
    from spanline.settings import Settings


class HotReadError(Exception):
    """The hot tier could not be read; the message says why (the export stops)."""


def cold_rows(table: Table, cold: ColdTable, project: str, start: datetime, end: datetime) -> pa.Table:
    """The cold rows of ``project`` in ``[start, end)``, one per identity, in the cold schema."""
    ex = expressions()
    t = cold.time_column
    flt = ex.And(
        ex.And(ex.GreaterThanOrEqual(t, start.isoformat()), ex.LessThan(t, end.isoformat())),
        ex.EqualTo("project_id", project),
    )
    data = to_iceberg_arrow(table.scan(row_filter=flt).to_arrow(), cold)
    return dedupe(data, IDENTITY[cold.name])


def _key_columns(name: str) -> tuple[str, ...]:
    return tuple(c for c in IDENTITY[name] if c != "project_id")  # one project per export


def identity_keys(data: pa.Table, name: str) -> pa.Array:
    """One string per row naming its record within the project."""
    cols = [pc.cast(data.column(c), pa.string()) for c in _key_columns(name)]
    joined = cols[0] if len(cols) == 1 else pc.binary_join_element_wise(*cols, "\x1f")
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


def _time_sql(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def write_hot_rows(
    client: Any, database: str, *, table: str, project: str, start: str, end: str, cold_keys: str, out: str
) -> dict[str, Any]:
    """In the hot store's owner: write to ``out`` (Parquet, cold schema) the hot rows of
    ``project`` in ``[start, end)`` whose identity is not among ``cold_keys`` (a Parquet
    file of :func:`identity_keys`). Returns ``rows`` written and ``hot_rows`` in the range."""
    cold = TABLES[table]
    if not int(client.command(f"EXISTS TABLE {database}.{table}")):
        return {"rows": 0, "hot_rows": 0}
    t = cold.time_column
    where = (
        f"project_id = {{p:String}} AND `{t}` >= toDateTime64({{s:String}}, 9, 'UTC') "
        f"AND `{t}` < toDateTime64({{e:String}}, 9, 'UTC')"
    )
    params = {
        "p": project,
        "s": _time_sql(datetime.fromisoformat(start)),
        "e": _time_sql(datetime.fromisoformat(end)),
    }
    keys = _key_columns(table)
    cols = ", ".join(f"`{c}`" for c in keys)
    arrow = {"output_format_arrow_string_as_string": 1}
    hot = client.query_arrow(
        f"SELECT {cols} FROM {database}.{table} FINAL WHERE {where}", parameters=params, settings=arrow
    )
    have = pq.read_table(cold_keys).column("key").combine_chunks()
    missing = hot.filter(pc.invert(pc.is_in(identity_keys(hot, table), value_set=have)))
    if missing.num_rows == 0:
        return {"rows": 0, "hot_rows": hot.num_rows}
    mem = f"{database}.archive_{uuid.uuid4().hex[:12]}"
    client.command(f"CREATE TABLE {mem} ({', '.join(f'`{c}` String' for c in keys)}) ENGINE = Memory")
    try:
        client.insert(mem, [list(r.values()) for r in missing.to_pylist()], column_names=list(keys))
        select = ", ".join(f"`{c}`" for c in cold.column_names)
        rows = client.query_arrow(
            f"SELECT {select} FROM {database}.{table} FINAL WHERE {where} "
            f"AND ({cols}) IN (SELECT {cols} FROM {mem})",
            parameters=params,
            settings=arrow,
        )
    finally:
        client.command(f"DROP TABLE IF EXISTS {mem}")
    data = to_iceberg_arrow(rows, cold)
    pq.write_table(data, out, compression="zstd")
    return {"rows": data.num_rows, "hot_rows": hot.num_rows}


def hot_rows(
    settings: Settings,
    governance: GovernanceStore,
    *,
    table: str,
    project: str,
    start: datetime,
    end: datetime,
    cold: pa.Table,
    workdir: Path,
    timeout_s: float,
) -> pa.Table:
    """The hot rows the cold tier lacks (see the module doc), read by the hot store's owner."""
    from spanline.coldtier.jobs import hot_owner_running, run_here, submit_hot_job

    keys_path, out_path = workdir / f"{table}.cold-keys.parquet", workdir / f"{table}.hot.parquet"
    pq.write_table(pa.table({"key": identity_keys(cold, table)}), keys_path)
    args = {
        "table": table,
        "project": project,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "cold_keys": str(keys_path),
        "out": str(out_path),
    }
    if hot_owner_running(settings):
        result = submit_hot_job(governance, "archive_read", args, timeout_s)
    else:
        database = settings.writer.database
        result = run_here(
            settings, lambda client: write_hot_rows(client, database, **args), {"rows": 0, "hot_rows": 0}
        )
    if "error" in result:
        raise HotReadError(f"hot tier of {table}: {result['error']}")
    if not result["rows"]:
        return TABLES[table].arrow_schema().empty_table()
    return pq.read_table(out_path, schema=TABLES[table].arrow_schema())
