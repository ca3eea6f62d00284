"""Make a real sink fail on demand, without root, for "never commit past a failed write" tests.

The idea every sink test can reuse: switch the sink itself into a state where writes fail
with the error a real outage gives, while reads keep working, then switch it back. No
mock of our code is involved: the service runs unchanged and meets a real refusal.

- :class:`ChdbInsertFailure` (hot tier): a CHECK constraint that no row satisfies
  (``CHECK 0 = 1``) is added to the tables; ClickHouse then refuses every insert with
  VIOLATED_CONSTRAINT (code 469, a transient code for the writer: retried, never
  dead-lettered); dropping the constraint heals the table. Run it from the process that
  owns the embedded engine (chdb admits one process per path), i.e. with the service in
  a thread of the test (``tests.support.services.ServiceThread``).
- :class:`SqliteCatalogLock` (cold tier, SQL catalog on sqlite): a second connection
  holds ``BEGIN EXCLUSIVE`` on the catalog database, so every catalog commit fails with
  "database is locked" after the driver's busy timeout; rolling back heals it. Works
  across processes, so the coldtier may run as a ``spanline run`` child process.
- :class:`FailingHttpProxy` (any HTTP sink: S3 through moto, a ClickHouse server): a
  reverse proxy that forwards requests to the real server, and answers a chosen status
  (503 by default) to matching requests while failing is on.
"""

from __future__ import annotations

import http.client
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CONSTRAINT = "spanline_injected_fault"


class ChdbInsertFailure:
    """Inserts into ``tables`` of ``database`` fail while :meth:`failing` is active."""

    def __init__(self, client: Any, database: str, tables: Sequence[str] = ("spans",)) -> None:
        self.client = client
        self.database = database
        self.tables = tuple(tables)
        self.active = False

    def fail(self) -> None:
        for t in self.tables:
            self.client.command(
                f"ALTER TABLE `{self.database}`.`{t}` ADD CONSTRAINT IF NOT EXISTS {CONSTRAINT} CHECK 0 = 1"
            )
        self.active = True

    def heal(self) -> None:
        for t in self.tables:
            self.client.command(f"ALTER TABLE `{self.database}`.`{t}` DROP CONSTRAINT IF EXISTS {CONSTRAINT}")
        self.active = False

    @contextmanager
    def failing(self) -> Iterator[ChdbInsertFailure]:
        self.fail()
        try:
            yield self
        finally:
            self.heal()


class SqliteCatalogLock:
    """Holds an exclusive lock on a sqlite database (an Iceberg SQL catalog) while active."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._conn: sqlite3.Connection | None = None

    def fail(self) -> None:
        conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        self._conn = conn

    def heal(self) -> None:
        if self._conn is not None:
            self._conn.execute("ROLLBACK")
            self._conn.close()
            self._conn = None

    @contextmanager
    def failing(self) -> Iterator[SqliteCatalogLock]:
        self.fail()
        try:
            yield self
        finally:
            self.heal()


_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
)


class FailingHttpProxy:
    """A reverse proxy to ``upstream`` (``http://host:port``) on 127.0.0.1 that can fail.

    ``should_fail(method, path)`` picks the requests to refuse while failing (default:
    every request that writes, i.e. not GET/HEAD). Counts refused requests in ``refused``.
    """

    def __init__(
        self,
        upstream: str,
        *,
        status: int = 503,
        body: bytes = b"injected failure",
        should_fail: Callable[[str, str], bool] | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.status = status
        self.body = body
        self.should_fail = should_fail or (lambda method, _path: method not in ("GET", "HEAD"))
        self.active = False
        self.refused = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FailingHttpProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy.active and proxy.should_fail(self.command, self.path):
                    with proxy._lock:
                        proxy.refused += 1
                    self.send_response(proxy.status)
                    self.send_header("Content-Length", str(len(proxy.body)))
                    self.end_headers()
                    self.wfile.write(proxy.body)
                    return
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def fail(self) -> None:
        self.active = True

    def heal(self) -> None:
        self.active = False

    @contextmanager
    def failing(self) -> Iterator[FailingHttpProxy]:
        self.fail()
        try:
            yield self
        finally:
            self.heal()
