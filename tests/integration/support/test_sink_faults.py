"""The fault switches of tests.support.sink_faults refuse writes for real and heal."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.sink_faults import FailingHttpProxy, SqliteCatalogLock

pytestmark = pytest.mark.integration


@pytest.fixture
def upstream() -> Iterator[str]:
    class Echo(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.command.encode() + b":" + self.rfile.read(length)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_proxy_forwards_then_refuses_writes_then_heals(upstream: str) -> None:
    proxy = FailingHttpProxy(upstream).start()
    try:
        assert httpx.put(proxy.url + "/b/k", content=b"x").text == "PUT:x"
        with proxy.failing():
            assert httpx.put(proxy.url + "/b/k", content=b"x").status_code == 503
            assert httpx.get(proxy.url + "/b/k").text == "GET:"  # reads still pass
        assert proxy.refused == 1
        assert httpx.post(proxy.url + "/b", content=b"y").text == "POST:y"
    finally:
        proxy.stop()


def test_sqlite_lock_refuses_commits_then_heals(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE t (v INTEGER)")
    lock = SqliteCatalogLock(db)
    with lock.failing():
        other = sqlite3.connect(db, timeout=0.1)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("INSERT INTO t VALUES (1)")
            other.commit()
        other.close()
    with sqlite3.connect(db) as c:
        c.execute("INSERT INTO t VALUES (2)")
    assert sqlite3.connect(db).execute("SELECT count(*) FROM t").fetchone() == (1,)
