"""One query across tiers: hot rows newer than the hot window's watermark, cold rows older.

The user's SQL names ``spans`` and ``scores``; for ``--tier cold|all`` those names become
CTEs over ``icebergLocal()``/``icebergS3()`` (and, for ``all``, ``UNION ALL`` with the hot
table). Three rules from measurement:
- the table function is pinned to the catalog's current metadata file
  (``iceberg_metadata_file_path``): ClickHouse would otherwise read the highest-numbered
  ``*.metadata.json`` on disk, which a failed commit can leave behind;
- both branches are cast explicitly to one type per column, or ClickHouse makes a
  ``Variant`` of ``UInt64``/``Int64`` and ``sum()`` fails;
- the watermark is a UTC midnight (``hot_days`` back), the same day boundary as the hot TTL,
  so a span is counted in exactly one branch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pyarrow as pa

from spanline.coldtier.tables import TABLES, ColdTable

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from spanline.settings import Settings

TIERS = ("hot", "cold", "all")


def _sql_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ch_type(t: pa.DataType) -> str:
    if pa.types.is_map(t):
        return "Map(String, String)"
    if pa.types.is_list(t):
        return "Array(String)"
    if pa.types.is_timestamp(t):
        return "Nullable(DateTime64(6, 'UTC'))"
    if pa.types.is_integer(t):
        return "Nullable(Int64)"
    if pa.types.is_floating(t):
        return "Nullable(Float64)"
    return "Nullable(String)"


def _select_list(cold: ColdTable) -> str:
    cols = []
    for f in cold.arrow_schema():
        cols.append(f"CAST(`{f.name}` AS {_ch_type(f.type)}) AS `{f.name}`")
    return ", ".join(cols)


def table_function(settings: Settings, table: Table) -> str:
    """``icebergLocal``/``icebergS3`` over ``table``, pinned to the catalog's metadata file."""
    location = table.location().rstrip("/")
    meta = table.metadata_location
    rel = (
        meta[len(location) + 1 :]
        if meta.startswith(location + "/")
        else "metadata/" + meta.rsplit("/", 1)[-1]
    )
    pin = f"SETTINGS iceberg_metadata_file_path = {_sql_str(rel)}"
    if location.startswith("file://"):
        return f"icebergLocal({_sql_str(urlsplit(location).path)}, {pin})"
    if location.startswith("/"):
        return f"icebergLocal({_sql_str(location)}, {pin})"
    c = settings.coldtier
    parts = urlsplit(location)
    if c.s3_endpoint:
        url = f"{c.s3_endpoint.rstrip('/')}/{parts.netloc}{parts.path}"
    else:
        region = c.s3_region or "us-east-1"
        url = f"https://{parts.netloc}.s3.{region}.amazonaws.com{parts.path}"
    args = [_sql_str(url)]
    if c.s3_access_key_id is not None and c.s3_secret_access_key is not None:
        args += [
            _sql_str(c.s3_access_key_id.get_secret_value()),
            _sql_str(c.s3_secret_access_key.get_secret_value()),
        ]
    return f"icebergS3({', '.join(args)}, {pin})"


def watermark_sql(hot_days: int) -> str:
    return f"toDateTime64(toStartOfDay(now('UTC')) - INTERVAL {int(hot_days)} DAY, 6, 'UTC')"


def source_sql(settings: Settings, tables: dict[str, Table], name: str, tier: str, database: str) -> str:
    cold = TABLES[name]
    select = _select_list(cold)
    t = cold.time_column
    wm = watermark_sql(settings.retention.hot_days)
    cold_branch = f"SELECT {select} FROM {table_function(settings, tables[name])}"
    if tier == "cold":
        return cold_branch
    hot_branch = f"SELECT {select} FROM `{database}`.`{name}` FINAL WHERE `{t}` >= {wm}"
    return f"{hot_branch} UNION ALL {cold_branch} WHERE `{t}` < {wm}"


def wrap(settings: Settings, tables: dict[str, Table], sql: str, tier: str, database: str) -> str:
    """The user's statement with ``spans``/``scores`` bound to the chosen tier."""
    ctes = ", ".join(f"`{n}` AS ({source_sql(settings, tables, n, tier, database)})" for n in TABLES)
    body = sql.strip().rstrip(";")
    if body[:4].upper() == "WITH" and body[4:5].isspace():
        return f"WITH {ctes}, {body[5:]}"
    return f"WITH {ctes} {body}"


def run_tier_query(settings: Settings, sql: str, tier: str, *, max_rows: int | None = None) -> Any:
    """Run ``sql`` over the cold tier (an in-memory engine) or over both tiers (the hot
    engine itself); returns spanline.query.readonly.QueryResult."""
    from spanline.coldtier.tables import ensure_tables
    from spanline.query.client import QueryError, endpoint_alive, endpoint_url
    from spanline.query.readonly import QueryRejected, QueryResult, check_readonly_sql
    from spanline.writer.config import dsn_is_embedded, resolve_dsn
    from spanline.writer.store import StoreError

    try:
        check_readonly_sql(sql)  # the user's part: the same surface as the hot tier
    except QueryRejected as exc:
        raise QueryError(str(exc)) from None
    w = settings.writer
    _, tables = ensure_tables(settings)
    for t in tables.values():
        t.refresh()
    dsn = resolve_dsn(settings)
    if tier == "cold":
        dsn = "chdb://"  # in memory: the hot store may be owned by a running writer
    elif dsn_is_embedded(dsn) and endpoint_alive(endpoint_url(settings)):
        raise QueryError(
            "--tier all joins the embedded hot store, which the running pipeline owns: use --tier hot "
            "and --tier cold separately while `spanline up` runs, or a ClickHouse server DSN"
        )
    statement = wrap(settings, tables, sql, tier, w.database)
    try:
        client = _client(settings, dsn, w.query_timeout_s)
    except StoreError as exc:
        raise QueryError(str(exc)) from None
    limit = max_rows or w.query_max_rows
    try:
        with _cwd(_local_warehouse(settings)):
            result = client.query(
                statement,
                settings={
                    "max_result_rows": limit,
                    "result_overflow_mode": "break",
                    "max_execution_time": max(1, int(w.query_timeout_s)),
                },
            )
    except Exception as exc:
        raise QueryError(
            str(exc).strip().splitlines()[0][:1000] if str(exc).strip() else type(exc).__name__
        ) from None
    finally:
        client.close()
    rows = result.result_rows
    return QueryResult(
        columns=list(result.column_names),
        types=[t.name for t in result.column_types],
        rows=[list(r) for r in rows[:limit]],
        truncated=len(rows) > limit,
    )


@contextlib.contextmanager
def _cwd(path: str | None) -> Iterator[None]:
    """The embedded engine lets ``icebergLocal`` read only below its ``user_files_path``,
    which is ``.`` (the working directory) for an engine directory created without one, as
    the writer's is; the query therefore runs from the warehouse root."""
    if path is None:
        yield
        return
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _client(settings: Settings, dsn: str, timeout_s: float) -> Any:
    from spanline.writer.store import connect

    return connect(dsn, readonly=True, timeout_s=timeout_s)


def _local_warehouse(settings: Settings) -> str | None:
    from spanline.coldtier.config import resolve_warehouse

    warehouse = resolve_warehouse(settings)
    return urlsplit(warehouse).path if warehouse.startswith("file://") else None


class TierBackend:
    """A query backend (``spanline.query.client.QueryBackend``) over the cold tier or both,
    so ``spanline trace`` renders a cold trace with the hot tier's own code."""

    def __init__(self, settings: Settings, tier: str) -> None:
        self.settings = settings
        self.tier = tier
        self.database = settings.writer.database

    def query(self, sql: str, *, final: bool = True) -> Any:
        # the trace view names `<database>.spans`; here spans/scores are the tier's CTEs
        for name in TABLES:
            sql = sql.replace(f"{self.database}.{name}", name)
        return run_tier_query(self.settings, sql, self.tier)

    def close(self) -> None:
        return None
