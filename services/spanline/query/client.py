"""Where the CLI sends its queries: the running pipeline's endpoint, or the engine directly.

For the embedded engine the local endpoint is tried first (``spanline up`` owns the data
directory); when nothing answers, the directory is opened directly, read-only. A server DSN
is always queried directly. The tier decides too: ``all`` follows the hot store (through
the endpoint while a pipeline owns it), ``cold`` needs no hot store and always runs in this
process's own in-memory engine (:mod:`spanline.coldtier.crosstier`).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from spanline.query.endpoint import SERVICE_TAG
from spanline.query.readonly import (
    QueryRejected,
    QueryResult,
    check_readonly_sql,
    engine_error_text,
    run_readonly,
)
from spanline.writer.config import chdb_path, dsn_is_embedded, resolve_dsn
from spanline.writer.store import EngineLocked, StoreError, chdb_dir_locked, connect, engine_locked_message

if TYPE_CHECKING:
    from spanline.core.up_state import UpState
    from spanline.settings import Settings


class QueryError(Exception):
    """A query failed; the message is for the person at the terminal."""


class QueryBackend(Protocol):
    database: str

    def query(self, sql: str, *, final: bool = True) -> QueryResult: ...

    def close(self) -> None: ...


class DirectBackend:
    """Queries through a read-only clickhouse-connect client."""

    def __init__(self, client: Any, database: str, *, max_rows: int, timeout_s: float) -> None:
        self.client = client
        self.database = database
        self.max_rows = max_rows
        self.timeout_s = timeout_s

    def query(self, sql: str, *, final: bool = True) -> QueryResult:
        from clickhouse_connect.driver.exceptions import ClickHouseError

        try:
            return run_readonly(
                self.client, sql, max_rows=self.max_rows, timeout_s=self.timeout_s, final=final
            )
        except QueryRejected as exc:
            raise QueryError(str(exc)) from None
        except ClickHouseError as exc:
            raise QueryError(engine_error_text(exc, sql)) from None

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing a client must not turn a good answer into an error
            return


class HttpBackend:
    """Queries through the local endpoint of the process that owns the engine; ``tier``
    (hot, cold, all) is sent along and must come back, or the endpoint predates tiers."""

    def __init__(self, url: str, database: str, *, timeout_s: float, tier: str = "hot") -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.timeout_s = timeout_s
        self.tier = tier

    def query(self, sql: str, *, final: bool = True) -> QueryResult:
        try:
            check_readonly_sql(sql)  # same message as the direct path, without a round trip
        except QueryRejected as exc:
            raise QueryError(str(exc)) from None
        payload: dict[str, Any] = {"sql": sql, "final": final}
        if self.tier != "hot":
            payload["tier"] = self.tier
        body = json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(  # noqa: S310 - loopback URL built from settings
            self.url + "/query", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s + 5) as response:  # noqa: S310
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                detail = exc.reason
            raise QueryError(str(detail)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise QueryError(f"query endpoint {self.url} failed: {exc}") from None
        if answer.get("tier", "hot") != self.tier:
            raise QueryError(
                f"the running pipeline's query endpoint ({self.url}) does not serve --tier {self.tier}: "
                "restart `spanline up` with this version of spanline"
            )
        return QueryResult.from_json(answer)

    def close(self) -> None:
        return None


def endpoint_url(settings: Settings) -> str:
    host = settings.writer.query_host
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{settings.writer.query_port}"


def endpoint_alive(url: str, timeout_s: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=timeout_s) as response:  # noqa: S310
            return bool(json.loads(response.read()).get("service") == SERVICE_TAG)
    except (OSError, ValueError):
        return False


def open_backend(
    settings: Settings, *, notice: Callable[[str], None] | None = None, tier: str = "hot"
) -> QueryBackend:
    """The endpoint when a pipeline serves one, else a direct read-only connection.

    A `spanline up` started from another directory (so with another ``data_dir``) is found
    through its state file when this data directory has nothing; ``notice`` is told which
    pipeline answers, so the person knows whose data they see. ``tier`` cold is always read
    here (an in-memory engine, no hot store); ``all`` goes where the hot store is."""
    from spanline.coldtier.crosstier import TierBackend, check_tier

    try:
        check_tier(tier)
    except ValueError as exc:
        raise QueryError(str(exc)) from None
    w = settings.writer
    dsn = resolve_dsn(settings)
    if tier == "cold" or (tier == "all" and not dsn_is_embedded(dsn)):
        return TierBackend(settings, tier)
    if dsn_is_embedded(dsn):
        url = endpoint_url(settings)
        if endpoint_alive(url):
            return HttpBackend(url, w.database, timeout_s=w.query_timeout_s, tier=tier)
        path = chdb_path(dsn)
        if path is not None:
            data_dir = settings.data_dir.resolve()
            ups = _live_ups()
            other = _pick_up(ups, data_dir, path)
            if other is not None:
                if notice is not None and Path(other.data_dir).resolve() != data_dir:
                    notice(
                        f"no pipeline serves {data_dir}; using the running `spanline up` of "
                        f"{other.data_dir} (pid {other.pid}, {other.query_url}). " + _POINT_ELSEWHERE
                    )
                return HttpBackend(other.query_url, w.database, timeout_s=w.query_timeout_s, tier=tier)
            if ups and notice is not None:  # old data here, the live pipeline elsewhere
                notice(
                    f"showing the data in {data_dir}; the running `spanline up` (pid {ups[0].pid}) "
                    f"serves {ups[0].data_dir}: SPANLINE_DATA_DIR={ups[0].data_dir} queries it"
                )
            if not path.exists():
                raise QueryError(
                    f"no data in {data_dir} (looked at {path}) and no running `spanline up` found: start "
                    f"the pipeline with `spanline up` (or run `spanline migrate`). " + _POINT_ELSEWHERE
                )
            if chdb_dir_locked(path):
                raise QueryError(
                    engine_locked_message(path) + f" Nothing answered at {url}: is writer.query_port the "
                    "port the running pipeline uses?"
                )
    if tier == "all":  # nothing owns the embedded store: open it here
        return TierBackend(settings, tier)
    try:
        client = connect(dsn, readonly=True, timeout_s=w.query_timeout_s, database=w.database)
    except EngineLocked as exc:
        raise QueryError(str(exc)) from None
    except StoreError as exc:
        raise QueryError(str(exc)) from None
    return DirectBackend(client, w.database, max_rows=w.query_max_rows, timeout_s=w.query_timeout_s)


_POINT_ELSEWHERE = "Another data directory: SPANLINE_DATA_DIR=<dir> or data_dir in --config FILE."


def _live_ups() -> list[UpState]:
    """Running `spanline up` processes whose query endpoint answers, newest first."""
    from spanline.core.up_state import running_ups

    return [u for u in running_ups() if u.query_url and endpoint_alive(u.query_url)]


def _pick_up(ups: list[UpState], data_dir: Path, engine_path: Path) -> UpState | None:
    """The pipeline of this data directory, else, when this directory holds no data, the
    newest one anywhere."""
    for up in ups:
        if Path(up.data_dir).resolve() == data_dir:
            return up
    if ups and not engine_path.exists():
        return ups[0]
    return None
