"""ClickHouse access for the writer: connect from a DSN, migrate, insert Arrow with retries.

One class serves the embedded engine (``chdb:///path``) and a server (``http(s)://``). They
differ only in the insert path: under chdb, ``INSERT ... SELECT FROM Python(arrow)`` reads
the Arrow table in place (about 8x faster than clickhouse-connect's ``insert_arrow`` here);
over HTTP ``insert_arrow`` streams the Arrow IPC format to the server.

Failures are split so the service can act on them: :class:`StoreUnavailable` means "the
store did not take the batch after retries; pause, keep the batch, try again" and
:class:`StoreRejected` means "this batch will never go in as is" (schema mismatch, bad
value) so retrying cannot help.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from xml.etree import ElementTree

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from spanline.writer.config import chdb_path, dsn_is_embedded, redact_dsn, resolve_dsn
from spanline.writer.engine_memory import configure_engine_allocator, release_startup_pages
from spanline.writer.metrics import (
    BYTES_WRITTEN,
    INSERT_BATCH_ROWS,
    INSERT_FAILURES,
    INSERT_SECONDS,
    ROWS_WRITTEN,
    InsertOutcome,
)
from spanline.writer.migrate import apply_migrations

if TYPE_CHECKING:
    from spanline.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

TABLES = ("spans", "logs", "scores", "alerts", "audit")

# server error codes that no retry can fix: the batch or the schema is wrong
_PERMANENT_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        16,  # NO_SUCH_COLUMN_IN_TABLE
        20,  # NUMBER_OF_COLUMNS_DOESNT_MATCH
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        36,  # BAD_ARGUMENTS
        41,  # CANNOT_PARSE_DATETIME
        47,  # UNKNOWN_IDENTIFIER
        53,  # TYPE_MISMATCH
        60,  # UNKNOWN_TABLE
        62,  # SYNTAX_ERROR
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        81,  # UNKNOWN_DATABASE
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        164,  # READONLY
        497,  # ACCESS_DENIED
    }
)


INSERT_SETTINGS = {"optimize_on_insert": 0}
"""Settings of every insert. ``optimize_on_insert = 0``: ClickHouse would otherwise run the
ReplacingMergeTree merge over each inserted block, row by row, to drop duplicates within it;
that was half of the insert's CPU (13.8 -> 6.8 us per span into the embedded engine). Batches
rarely repeat a key, and replays are collapsed by background merges and ``FINAL`` reads, which
the query surface uses anyway."""
_INSERT_SETTINGS_SQL = ", ".join(f"{k} = {v}" for k, v in INSERT_SETTINGS.items())


ENGINE_CONFIG_FILE = Path(__file__).with_name("engine_config.xml")
"""The embedded engine's configuration file: the defaults of MergeTree tables (granules of at
most 2 MiB, which halve a background merge's memory on heavy spans), which no command-line
option of the engine sets. It says why in its own comment."""


def _merge_tree_defaults(config: Path) -> dict[str, str]:
    """The ``<merge_tree>`` settings of an engine configuration file (the one definition of
    what the engine is expected to have read)."""
    section = ElementTree.parse(config).getroot().find("merge_tree")  # noqa: S314 - our own package file
    return {} if section is None else {e.tag: (e.text or "").strip() for e in section}


ENGINE_MERGE_TREE_DEFAULTS = _merge_tree_defaults(ENGINE_CONFIG_FILE)

ENGINE_SETTINGS: dict[str, int] = {
    "mark_cache_size": 64 << 20,
    "index_mark_cache_size": 16 << 20,
    "primary_index_cache_size": 16 << 20,
    "uncompressed_cache_size": 0,
    "index_uncompressed_cache_size": 0,
    "query_condition_cache_size": 16 << 20,
    "compiled_expression_cache_size": 16 << 20,
    "merges_mutations_memory_usage_soft_limit": 256 << 20,
    "max_server_memory_usage": 512 << 20,
}
"""Server settings of the embedded engine (chdb reads them from its connection string; every
client of the process passes the same ones). ClickHouse sizes its caches for a server: 5 GiB
each for marks, skip-index marks and primary indexes, and 90 % of RAM for all queries and
merges together. The writer shares its process with the engine, so each is bounded here:
caches in the tens of MiB (measured empty after the write benchmark and 300 trace and
aggregate queries, so the bound costs nothing there), merges stop being scheduled past
256 MiB, and the engine's tracked memory is capped at 512 MiB: an insert that would pass it
fails with MEMORY_LIMIT_EXCEEDED and is retried like any transient error (see
docs/storage.md, *Memory of the embedded engine*)."""

ENGINE_OPTIONS: dict[str, int | str] = {
    "config-file": str(ENGINE_CONFIG_FILE),
    **ENGINE_SETTINGS,
}
"""What every embedded client passes chdb: its configuration file and the settings above."""


class StoreError(Exception):
    """Base of store failures; messages never contain credentials or row values."""


class StoreUnavailable(StoreError):
    """ClickHouse did not accept the batch after all retries: pause consumption and retry later."""


class StoreRejected(StoreError):
    """ClickHouse refuses this batch for good (schema or data): do not retry it unchanged."""


class EngineLocked(StoreError):
    """The embedded engine's directory belongs to another process (chdb: one process per path)."""


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 5
    initial_s: float = 0.2
    max_s: float = 10.0

    def delays(self) -> list[float]:
        out, delay = [], self.initial_s
        for _ in range(self.retries):
            out.append(delay)
            delay = min(delay * 2, self.max_s)
        return out


def _error_code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    text = str(exc)
    marker = "Code: "
    at = text.find(marker)
    if at >= 0:
        digits = ""
        for ch in text[at + len(marker) :]:
            if not ch.isdigit():
                break
            digits += ch
        if digits:
            return int(digits)
    return None


def is_permanent(exc: BaseException) -> bool:
    """True when retrying the same request cannot succeed."""
    if isinstance(exc, OperationalError):
        return False
    if isinstance(exc, pa.ArrowException | TypeError | ValueError):
        return True
    code = _error_code(exc)
    return code in _PERMANENT_CODES if code is not None else False


def chdb_dir_locked(path: Path) -> bool:
    """Whether another process owns the engine directory (ClickHouse flocks ``<path>/status``).

    Only meaningful in a process that has not opened that engine itself.
    """
    status = path / "status"
    try:
        fd = os.open(status, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def connect(
    dsn: str,
    *,
    readonly: bool = False,
    timeout_s: float = 60.0,
    settings: dict[str, Any] | None = None,
    database: str | None = None,
) -> Any:
    """A clickhouse-connect client for ``dsn``.

    ``readonly`` uses ``readonly=2`` (no writes or DDL, per-query settings still allowed).
    On chdb it is applied to this client's own session, which the engine enforces; the
    process may hold other, writable clients on the same engine.
    """
    client_settings = dict(settings or {})
    if readonly:
        client_settings["readonly"] = 2
    if dsn_is_embedded(dsn):
        path = chdb_path(dsn)
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
        configure_engine_allocator()  # before the first embedded client loads the library
        try:
            return clickhouse_connect.get_client(
                dsn=dsn, settings=client_settings, database=database, chdb_options=ENGINE_OPTIONS
            )
        except ClickHouseError as exc:
            if path is not None and chdb_dir_locked(path):
                raise EngineLocked(engine_locked_message(path)) from None
            raise StoreUnavailable(f"cannot open embedded ClickHouse at {path or 'memory'}: {exc}") from None
    try:
        return clickhouse_connect.get_client(
            dsn=dsn,
            settings=client_settings,
            database=database,
            connect_timeout=min(timeout_s, 10.0),
            send_receive_timeout=timeout_s,
        )
    except ClickHouseError as exc:
        if is_permanent(exc):
            raise StoreRejected(f"ClickHouse at {redact_dsn(dsn)} refused the connection: {exc}") from None
        raise StoreUnavailable(f"ClickHouse at {redact_dsn(dsn)} is unreachable: {exc}") from None


def engine_locked_message(path: Path) -> str:
    return (
        f"the embedded ClickHouse at {path} is in use by another process (chdb allows one process "
        "per data directory). If `spanline up` is running, its read-only query endpoint serves "
        "queries: check writer.query_port; otherwise stop the other process."
    )


class ClickHouseStore:
    """Inserts Arrow batches into the spanline tables.

    One client must not run two statements at once, so inserts are serialized here; callers
    (the writer keeps two batches in flight) need no lock of their own.
    """

    def __init__(self, client: Any, database: str, *, dsn: str, retry: RetryPolicy | None = None) -> None:
        self.client = client
        self.database = database
        self.dsn = dsn
        self.embedded = dsn_is_embedded(dsn)
        self.retry = retry or RetryPolicy()
        self._sleep: Callable[[float], None] = time.sleep
        self._insert_lock = threading.Lock()

    def migrate(self, hot_days: int, retain_days: int | None = None) -> list[int]:
        return self._with_retries(
            "migrate", lambda: apply_migrations(self.client, self.database, hot_days, retain_days=retain_days)
        )

    def _insert_once(self, table: str, data: pa.Table) -> None:
        if self.embedded:
            cols = ", ".join(f"`{name}`" for name in data.column_names)
            spanline_arrow_batch = data  # noqa: F841 - chdb's Python() finds it by name on the stack
            self.client.command(
                f"INSERT INTO `{self.database}`.`{table}` ({cols}) "
                f"SELECT {cols} FROM Python(spanline_arrow_batch) SETTINGS {_INSERT_SETTINGS_SQL}"
            )
        else:
            self.client.insert_arrow(table, data, database=self.database, settings=INSERT_SETTINGS)

    def insert(self, table: str, data: pa.Table) -> None:
        """Insert one batch; returns once ClickHouse acknowledged it (then commit offsets).

        Raises :class:`StoreUnavailable` after ``retry.retries`` failed attempts, or at once
        :class:`StoreRejected` for a permanent error.
        """
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")
        if data.num_rows == 0:
            return
        started = time.perf_counter()
        with self._insert_lock:
            self._with_retries(table, lambda: self._insert_once(table, data))
        INSERT_SECONDS.labels(table=table).observe(time.perf_counter() - started)
        INSERT_BATCH_ROWS.labels(table=table).observe(data.num_rows)
        ROWS_WRITTEN.labels(table=table).inc(data.num_rows)
        BYTES_WRITTEN.labels(table=table).inc(data.nbytes)

    async def insert_async(self, table: str, data: pa.Table) -> None:
        """:meth:`insert` off the event loop, so Kafka heartbeats keep flowing during retries."""
        await asyncio.to_thread(self.insert, table, data)

    def _with_retries(self, what: str, attempt: Callable[[], T]) -> T:
        delays = self.retry.delays()
        for n in range(len(delays) + 1):
            try:
                return attempt()
            except (ClickHouseError, pa.ArrowException, TypeError, ValueError) as exc:
                if is_permanent(exc):
                    INSERT_FAILURES.labels(table=what, outcome=InsertOutcome.REJECTED).inc()
                    raise StoreRejected(f"{what}: ClickHouse rejected the request: {_short(exc)}") from None
                if n == len(delays):
                    INSERT_FAILURES.labels(table=what, outcome=InsertOutcome.UNAVAILABLE).inc()
                    raise StoreUnavailable(
                        f"{what}: ClickHouse at {redact_dsn(self.dsn)} unavailable after "
                        f"{len(delays) + 1} attempts: {_short(exc)}"
                    ) from None
                INSERT_FAILURES.labels(table=what, outcome=InsertOutcome.RETRIED).inc()
                log.warning(
                    "ClickHouse request failed, retrying", extra={"what": what, "retry_in_s": delays[n]}
                )
                self._sleep(delays[n])
        raise AssertionError("unreachable")

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except Exception:  # ping must answer, never raise
            return False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def open_store(settings: Settings, *, migrate: bool = True) -> ClickHouseStore:
    """Connect with the DSN resolved from settings, create database and tables, and return the store.

    Raises :class:`EngineLocked` when another process owns the embedded engine,
    :class:`StoreUnavailable` when a server cannot be reached.
    """
    w = settings.writer
    dsn = resolve_dsn(settings)
    client = connect(dsn, timeout_s=w.insert_timeout_s)
    store = ClickHouseStore(
        client,
        w.database,
        dsn=dsn,
        retry=RetryPolicy(w.insert_retries, w.insert_backoff_initial_s, w.insert_backoff_max_s),
    )
    if migrate:
        try:
            store.migrate(
                settings.retention.hot_days, max(settings.retention.hot_days, settings.retention.cold_days)
            )
        except Exception:
            store.close()
            raise
    if store.embedded:
        missing = engine_defaults_missing(client)
        if missing:
            # chdb starts without a config file it cannot open, and a '&' in its path is lost
            # in the connection string even when encoded: say so instead of running unbounded
            log.warning(
                "embedded engine runs without its configuration file: its merges hold 2-3x "
                "the memory on heavy spans (is there a '&' in the install path?)",
                extra={"config_file": str(ENGINE_CONFIG_FILE), "settings": ",".join(missing)},
            )
        release_startup_pages()
    return store


def engine_defaults_missing(client: Any) -> list[str]:
    """The MergeTree defaults of :data:`ENGINE_CONFIG_FILE` the embedded engine does not have."""
    rows = client.query(
        "SELECT name, value FROM system.merge_tree_settings WHERE name IN %(names)s",
        parameters={"names": list(ENGINE_MERGE_TREE_DEFAULTS)},
    ).result_rows
    have = dict(rows)
    return sorted(k for k, v in ENGINE_MERGE_TREE_DEFAULTS.items() if have.get(k) != v)
