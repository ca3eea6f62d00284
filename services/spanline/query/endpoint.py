"""A local read-only HTTP endpoint over the engine this process owns.

The embedded engine (chdb) admits one process per data directory. Under ``spanline up``
the writer owns it, so ``spanline query`` in another terminal could not open it; instead
the owner serves ``POST /query`` on 127.0.0.1 and the CLI talks to that. The endpoint uses
its own client with ``readonly=2`` (enforced by the engine) plus the statement check of
:mod:`spanline.query.readonly`.

A request may name a tier (``"tier": "hot" | "cold" | "all"``, default hot). For cold and
all the endpoint binds ``spans``/``scores`` to the cold tier or to both
(:mod:`spanline.coldtier.crosstier`), loading the Iceberg catalog read-only and pinning each
table's current metadata file per request, so ``spanline query --tier all`` works while the
writer owns the hot store. The answer names the tier it ran, so a client can tell an
endpoint that ignored the field.

Browser safety: requests must be ``Content-Type: application/json`` (a cross-site page
cannot send that without a CORS preflight, which is never granted) and name a loopback
``Host`` (defeats DNS rebinding).
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from clickhouse_connect.driver.exceptions import ClickHouseError

from spanline.query.readonly import QueryRejected, check_readonly_sql, engine_error_text, run_readonly
from spanline.writer.metrics import QUERIES

if TYPE_CHECKING:
    from spanline.settings import Settings

log = logging.getLogger(__name__)

SERVICE_TAG = "spanline-query"
_MAX_BODY = 1024 * 1024
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class QueryEndpoint:
    """``start()`` serves in a daemon thread; ``stop()`` shuts it down and closes the client."""

    def __init__(
        self,
        client: Any,
        database: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_rows: int = 100_000,
        timeout_s: float = 30.0,
        own_client: bool = True,
        settings: Settings | None = None,
    ) -> None:
        self.client = client
        # the pipeline's settings: the cold tier's catalog and the hot window; None serves hot only
        self.settings = settings
        self._catalog: Any = None  # the Iceberg catalog, opened read-only on the first cold/all query
        self.database = database
        self.host = host
        self.port = port
        self.max_rows = max_rows
        self.timeout_s = timeout_s
        self._own_client = own_client
        self._lock = threading.Lock()  # one query at a time on the shared engine handle
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        endpoint = self

        class Handler(_Handler):
            owner = endpoint

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="spanline-query", daemon=True)
        self._thread.start()
        log.info("query endpoint listening", extra={"host": self.host, "port": self.port})

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._own_client:
            try:
                self.client.close()
            except Exception:  # closing must not mask the shutdown
                log.debug("closing query client failed", exc_info=True)

    def execute(self, sql: str, final: bool, tier: str = "hot") -> dict[str, Any]:
        """QueryRejected for a statement or tier the surface refuses, ColdTierUnavailable when
        the cold tier cannot be read, ClickHouseError (hot) or TierQueryFailed (cold, all)
        from the engine."""
        if tier == "hot":
            with self._lock:
                result = run_readonly(
                    self.client, sql, max_rows=self.max_rows, timeout_s=self.timeout_s, final=final
                )
            return {**result.to_json(), "tier": tier}
        from spanline.coldtier.crosstier import (
            OWNER_QUERY_MAX_MEMORY,
            check_tier,
            load_cold_tables,
            open_catalog_readonly,
            run_statement,
            tier_statement,
        )

        try:
            check_tier(tier)
        except ValueError as exc:
            raise QueryRejected(str(exc)) from None
        if self.settings is None:
            raise QueryRejected("this endpoint serves the hot tier only")
        check_readonly_sql(sql)  # a refused statement is named before the catalog is read
        if self._catalog is None:  # kept: 2 ms a request to load the tables instead of 9
            self._catalog = open_catalog_readonly(self.settings)
        tables = load_cold_tables(self.settings, self._catalog)  # catalog I/O outside the engine lock
        statement = tier_statement(self.settings, sql, tier, tables, final=final)
        try:
            with self._lock:
                result = run_statement(
                    self.client,
                    self.settings,
                    statement,
                    max_rows=self.max_rows,
                    timeout_s=self.timeout_s,
                    max_memory=OWNER_QUERY_MAX_MEMORY,  # the inserts beside it keep their share
                )
        except ClickHouseError as exc:  # positions and text refer to the bound statement
            raise TierQueryFailed(engine_error_text(exc, statement)) from None
        return {**result.to_json(), "tier": tier}


class TierQueryFailed(Exception):
    """The engine refused a cold/all statement; the message is the engine's, made readable."""


class _Handler(BaseHTTPRequestHandler):
    owner: QueryEndpoint
    server_version = SERVICE_TAG

    def log_message(self, format: str, *args: Any) -> None:
        return  # access logs would carry SQL text, which may hold values

    def _send(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").strip()
        if host.startswith("["):
            name = host[: host.find("]") + 1]
        else:
            name = host.rsplit(":", 1)[0] if ":" in host else host
        return name in _LOOPBACK_HOSTS or name == self.owner.host

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/healthz":
            self._send(HTTPStatus.OK, {"service": SERVICE_TAG, "database": self.owner.database})
            return
        self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/query":
            self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        if not self._host_ok():
            QUERIES.labels(outcome="forbidden").inc()
            self._send(HTTPStatus.FORBIDDEN, {"error": "Host must be a loopback name"})
            return
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            QUERIES.labels(outcome="forbidden").inc()
            self._send(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "Content-Type must be application/json"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length <= 0 or length > _MAX_BODY:
            self._send(HTTPStatus.BAD_REQUEST, {"error": f"body must be 1..{_MAX_BODY} bytes"})
            return
        try:
            request = json.loads(self.rfile.read(length))
            sql = request["sql"]
            final = bool(request.get("final", True))
            tier = request.get("tier", "hot")
            if not isinstance(sql, str):
                raise TypeError("sql must be a string")
            if not isinstance(tier, str):
                raise TypeError("tier must be a string")
        except (ValueError, KeyError, TypeError) as exc:
            self._send(HTTPStatus.BAD_REQUEST, {"error": f"expected JSON {{'sql': '...'}}: {exc}"})
            return
        from spanline.coldtier.crosstier import ColdTierUnavailable

        try:
            payload = self.owner.execute(sql, final, tier)
        except QueryRejected as exc:
            QUERIES.labels(outcome="rejected").inc()
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc), "kind": "rejected"})
            return
        except ColdTierUnavailable as exc:
            QUERIES.labels(outcome="error").inc()
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc), "kind": "cold_tier"})
            return
        except TierQueryFailed as exc:
            QUERIES.labels(outcome="error").inc()
            self._send(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(exc), "kind": "clickhouse"})
            return
        except ClickHouseError as exc:
            QUERIES.labels(outcome="error").inc()
            error = engine_error_text(exc, sql)
            self._send(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": error, "kind": "clickhouse"})
            return
        QUERIES.labels(outcome="ok").inc()
        self._send(HTTPStatus.OK, payload)


def start_query_endpoint(settings: Settings, *, port: int | None = None) -> QueryEndpoint:
    """Serve read-only queries for this process's engine on ``writer.query_host:query_port``.

    Call it in the process that owns the embedded engine (the writer under ``spanline up``),
    after the store is open; stop it before closing the store.
    """
    from spanline.writer.config import resolve_dsn
    from spanline.writer.store import connect

    w = settings.writer
    client = connect(resolve_dsn(settings), readonly=True, timeout_s=w.query_timeout_s, database=w.database)
    endpoint = QueryEndpoint(
        client,
        w.database,
        host=w.query_host,
        port=w.query_port if port is None else port,
        max_rows=w.query_max_rows,
        timeout_s=w.query_timeout_s,
        settings=settings,
    )
    try:
        endpoint.start()
    except OSError:
        endpoint.stop()
        raise
    return endpoint
