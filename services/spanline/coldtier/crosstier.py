"""One query across tiers: hot rows newer than the hot window's watermark, cold rows older.

The user's SQL names ``spans`` and ``scores``; for ``--tier cold|all`` those names become
CTEs over ``icebergLocal()``/``icebergS3()`` (and, for ``all``, ``UNION ALL`` with the hot
table). Three rules from measurement:
- the table function is pinned to the catalog's current metadata file
  (``iceberg_metadata_file_path``): ClickHouse would otherwise read the highest-numbered
  ``*.metadata.json`` on disk, which a failed commit can leave behind;
- both branches are cast explicitly to one type per column, or ClickHouse makes a
  ``Variant`` of ``UInt64``/``Int64`` and ``sum()`` fails;
- the watermark is the hot TTL's own boundary, ``now() - hot_days`` (the TTL deletes a span
  once ``start_time + hot_days`` has passed, at insert or at a TTL merge): a hot span at or
  after it cannot have been deleted yet, so it comes from the hot branch, and every span
  before it from the cold branch; each span once. (A UTC-midnight watermark missed up to a
  day of spans: expired in the hot tier, after the watermark so not read from the cold.)

Who runs the statement: ``--tier all`` needs the hot store, so under ``spanline up`` the
writer's query endpoint (``spanline.query.endpoint``) runs it on the engine it owns; with
nothing running the CLI opens the store itself. ``--tier cold`` needs no hot store and runs
in the caller's own in-memory engine, so a long cold scan never takes memory from the
writer's capped engine.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pyarrow as pa

from spanline.coldtier.tables import TABLES, ColdTable

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from spanline.query.readonly import QueryResult
    from spanline.settings import Settings

TIERS = ("hot", "cold", "all")

OWNER_QUERY_MAX_MEMORY = 256 << 20
"""``max_memory_usage`` of a cold/all statement run by the writer's query endpoint. The
writer's engine is capped at 512 MiB for everything (``writer.store.ENGINE_SETTINGS``); a
query past half of it fails alone, with the engine's 'memory limit (for query) exceeded',
instead of failing the inserts beside it. Measured on 200k loadgen heavy spans (29.9 MB of
Parquet): count and aggregates by model need 8 MiB, ``uniqExact`` of the span keys and a
payload ``LIKE`` scan 32-64 MiB, ``SELECT * ... ORDER BY start_time LIMIT 20`` 64 MiB."""


class ColdTierUnavailable(Exception):
    """The cold tier cannot be read (no catalog or table yet, catalog unreachable, or this
    platform cannot give the query its own working directory); the message says which."""


def check_tier(tier: str) -> str:
    """``tier`` if it is one of :data:`TIERS`, else ValueError naming them."""
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}: use hot, cold or all")
    return tier


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
    """The hot TTL's boundary at query time (``now()`` is one value per query)."""
    return f"toDateTime64(now('UTC') - INTERVAL {int(hot_days)} DAY, 6, 'UTC')"


def source_sql(
    settings: Settings, tables: dict[str, Table], name: str, tier: str, database: str, *, final: bool = True
) -> str:
    cold = TABLES[name]
    select = _select_list(cold)
    t = cold.time_column
    wm = watermark_sql(settings.retention.hot_days)
    cold_branch = f"SELECT {select} FROM {table_function(settings, tables[name])}"
    if tier == "cold":
        return cold_branch
    dedupe = " FINAL" if final else ""
    hot_branch = f"SELECT {select} FROM `{database}`.`{name}`{dedupe} WHERE `{t}` >= {wm}"
    return f"{hot_branch} UNION ALL {cold_branch} WHERE `{t}` < {wm}"


def wrap(
    settings: Settings, tables: dict[str, Table], sql: str, tier: str, database: str, *, final: bool = True
) -> str:
    """The user's statement with ``spans``/``scores`` (also spelled ``<database>.spans``, as
    the trace view does) bound to the chosen tier."""
    ctes = ", ".join(
        f"`{n}` AS ({source_sql(settings, tables, n, tier, database, final=final)})" for n in TABLES
    )
    body = sql.strip().rstrip(";")
    for name in TABLES:
        body = re.sub(rf"(?<![\w`.]){re.escape(database)}\.{name}\b", name, body)
    if body[:4].upper() == "WITH" and body[4:5].isspace():
        return f"WITH {ctes}, {body[5:]}"
    return f"WITH {ctes} {body}"


def open_catalog_readonly(settings: Settings) -> Any:
    """The Iceberg catalog, opened to read: unlike ``tables.open_catalog`` it creates no
    directory, catalog table or sqlite file, so the writer can hold it beside the coldtier."""
    from pyiceberg.catalog import load_catalog

    from spanline.coldtier.config import resolve_catalog_properties

    props = resolve_catalog_properties(settings)
    if props["type"] == "sql":
        props["init_catalog_tables"] = "false"
        uri = props["uri"]
        if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
            raise ColdTierUnavailable(
                f"the cold tier has no catalog yet ({uri[len('sqlite:///') :]}): the coldtier service "
                "creates it when it starts"
            )
    try:
        return load_catalog(settings.coldtier.catalog_name, **props)
    except Exception as exc:  # a REST/Glue catalog out of reach: say so, not a stack trace
        raise ColdTierUnavailable(f"cannot open the Iceberg catalog: {_first_line(exc)}") from None


def load_cold_tables(settings: Settings, catalog: Any | None = None) -> dict[str, Table]:
    """``spans`` and ``scores`` at the catalog's current metadata, never created here."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    catalog = catalog if catalog is not None else open_catalog_readonly(settings)
    ns = settings.coldtier.namespace
    tables = {}
    for name in TABLES:
        try:
            tables[name] = catalog.load_table((ns, name))
        except (NoSuchTableError, NoSuchNamespaceError):
            raise ColdTierUnavailable(
                f"the cold tier has no table {ns}.{name} yet: the coldtier service creates it when it starts"
            ) from None
        except Exception as exc:  # sqlite without catalog tables, a catalog out of reach
            raise ColdTierUnavailable(
                f"cannot load {ns}.{name} from the Iceberg catalog: {_first_line(exc)}"
            ) from None
    return tables


def tier_statement(
    settings: Settings, sql: str, tier: str, tables: dict[str, Table], *, final: bool = True
) -> str:
    """The checked user statement bound to ``tier``; QueryRejected names what is not allowed.

    The check runs on the user's part only: the wrapping itself uses table functions the
    query surface refuses to the user."""
    from spanline.query.readonly import check_readonly_sql

    return wrap(settings, tables, check_readonly_sql(sql), tier, settings.writer.database, final=final)


def run_statement(
    client: Any,
    settings: Settings,
    statement: str,
    *,
    max_rows: int,
    timeout_s: float,
    max_memory: int | None = None,
) -> QueryResult:
    """Run a :func:`tier_statement` on ``client`` (read-only); engine errors propagate.
    ``max_memory``: the statement's own memory cap in bytes (None: the engine's)."""
    from spanline.query.readonly import QueryResult

    limits: dict[str, Any] = {
        "max_result_rows": max_rows,
        "result_overflow_mode": "break",
        "max_execution_time": max(1, int(timeout_s)),
    }
    if max_memory is not None:
        limits["max_memory_usage"] = max_memory
    with warehouse_cwd(local_warehouse(settings)):
        result = client.query(statement, settings=limits)
    rows = result.result_rows
    return QueryResult(
        columns=list(result.column_names),
        types=[t.name for t in result.column_types],
        rows=[list(r) for r in rows[:max_rows]],
        truncated=len(rows) > max_rows,
    )


def run_tier_query(
    settings: Settings, sql: str, tier: str, *, max_rows: int | None = None, final: bool = True
) -> QueryResult:
    """Run ``sql`` in this process: over the cold tier in an in-memory engine, or over both
    tiers on the hot store opened here (so not while a running pipeline owns an embedded
    one: ``spanline.query.client.open_backend(settings, tier="all")`` goes through its
    endpoint then)."""
    from spanline.query.client import QueryError, endpoint_alive, endpoint_url
    from spanline.query.readonly import QueryRejected, check_readonly_sql
    from spanline.writer.config import dsn_is_embedded, resolve_dsn
    from spanline.writer.store import StoreError

    w = settings.writer
    try:
        check_tier(tier)
        check_readonly_sql(sql)  # a refused statement is named before the catalog is read
        tables = load_cold_tables(settings)
        statement = tier_statement(settings, sql, tier, tables, final=final)
    except (QueryRejected, ColdTierUnavailable, ValueError) as exc:
        raise QueryError(str(exc)) from None
    dsn = resolve_dsn(settings)
    if tier == "cold":
        dsn = "chdb://"  # in memory: the hot store may be owned by a running writer
    elif dsn_is_embedded(dsn) and endpoint_alive(endpoint_url(settings)):
        raise QueryError(
            "--tier all reads the embedded hot store, which the running pipeline owns: its query "
            "endpoint runs the query (spanline query --tier all does so)"
        )
    try:
        client = _client(dsn, w.query_timeout_s)
    except StoreError as exc:
        raise QueryError(str(exc)) from None
    try:
        return run_statement(
            client, settings, statement, max_rows=max_rows or w.query_max_rows, timeout_s=w.query_timeout_s
        )
    except ColdTierUnavailable as exc:
        raise QueryError(str(exc)) from None
    except Exception as exc:
        from spanline.query.readonly import engine_error_text

        raise QueryError(engine_error_text(exc, statement)) from None
    finally:
        client.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


# unshare(2) flag: the calling thread stops sharing cwd, root and umask with the process
_CLONE_FS = 0x00000200


def _own_cwd_for_this_thread() -> bool:
    """Give the calling thread a working directory of its own (Linux ``unshare(CLONE_FS)``);
    False where that is impossible (another OS, or a seccomp profile that refuses it)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.unshare(_CLONE_FS)) == 0
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def warehouse_cwd(path: str | None) -> Iterator[None]:
    """Run the block with the working directory at ``path`` (a local warehouse).

    The embedded engine lets ``icebergLocal`` read only below its ``user_files_path``, which
    clickhouse-local (so chdb) fixes to the working directory; a ``user_files_path`` in the
    engine's options is accepted but not used (measured with chdb 26.9). The check is made
    in the thread that sends the query, so that thread alone moves: ``unshare(CLONE_FS)``
    gives it its own working directory and the rest of the process (the writer's consumer,
    its other queries) keeps the one it had. A warehouse already below the working directory
    needs no move; a single-threaded process (the CLI) may simply change directory."""
    if path is None or _below(path, os.getcwd()):
        yield
        return
    if not _own_cwd_for_this_thread() and threading.active_count() > 1:
        raise ColdTierUnavailable(
            f"the local cold tier ({path}) is outside this process's working directory and this "
            "platform cannot give one thread its own (unshare(CLONE_FS) refused): start "
            "`spanline up` from a directory above the warehouse, or query it with nothing running"
        )
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _below(path: str, root: str) -> bool:
    p, r = os.path.normpath(path), os.path.normpath(root)
    return r == "/" or p == r or p.startswith(r + "/")


def local_warehouse(settings: Settings) -> str | None:
    """The warehouse directory of a ``file://`` warehouse, None for object storage."""
    from spanline.coldtier.config import resolve_warehouse

    warehouse = resolve_warehouse(settings)
    return urlsplit(warehouse).path if warehouse.startswith("file://") else None


def _client(dsn: str, timeout_s: float) -> Any:
    from spanline.writer.store import connect

    return connect(dsn, readonly=True, timeout_s=timeout_s)


class TierBackend:
    """A query backend (``spanline.query.client.QueryBackend``) over the cold tier or both,
    run in this process, so ``spanline trace`` renders a cold trace with the hot tier's own
    code."""

    def __init__(self, settings: Settings, tier: str) -> None:
        self.settings = settings
        self.tier = check_tier(tier)
        self.database = settings.writer.database

    def query(self, sql: str, *, final: bool = True) -> QueryResult:
        return run_tier_query(self.settings, sql, self.tier, final=final)

    def close(self) -> None:
        return None
