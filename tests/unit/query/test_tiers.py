"""The tier surface without an engine: statement binding, tier names, the per-thread working
directory, and the endpoint/client exchange (a fake engine client behind the real HTTP
endpoint, a stand-in endpoint that predates tiers)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from spanline.coldtier.crosstier import TIERS, check_tier, warehouse_cwd, wrap
from spanline.query.client import HttpBackend, QueryError
from spanline.query.endpoint import QueryEndpoint
from spanline.settings import load_settings


class _Table:
    """What ``table_function`` reads of a pyiceberg table."""

    def __init__(self, name: str) -> None:
        self._location = f"file:///wh/spanline/{name}"
        self.metadata_location = f"{self._location}/metadata/00003-abc.metadata.json"

    def location(self) -> str:
        return self._location


def _wrap(sql: str, tier: str = "all", **kw: Any) -> str:
    s = load_settings(None, retention={"hot_days": 7})
    return wrap(s, {"spans": _Table("spans"), "scores": _Table("scores")}, sql, tier, "spanline", **kw)  # type: ignore[dict-item]


def test_wrap_binds_both_spellings_and_keeps_other_tables_hot() -> None:
    out = _wrap("SELECT count() FROM spanline.spans JOIN spanline.logs USING trace_id")
    body = out[out.rindex(") SELECT") + 2 :]
    assert body == "SELECT count() FROM spans JOIN spanline.logs USING trace_id"
    assert "iceberg_metadata_file_path = 'metadata/00003-abc.metadata.json'" in out
    assert (
        "FROM `spanline`.`spans` FINAL WHERE `start_time` >= toDateTime64(now('UTC') - INTERVAL 7 DAY" in out
    )
    assert "`start_time` < toDateTime64(now('UTC') - INTERVAL 7 DAY, 6, 'UTC')" in out
    assert "FINAL" not in _wrap("SELECT 1 FROM spans", final=False)
    assert "`spanline`.`spans`" not in _wrap("SELECT 1 FROM spans", tier="cold")
    # a user's own WITH keeps its CTEs after ours; a look-alike name is left alone
    out = _wrap("WITH x AS (SELECT 1) SELECT * FROM x, myspanline.spans")
    assert out.startswith("WITH `spans` AS (") and out.endswith(
        ", x AS (SELECT 1) SELECT * FROM x, myspanline.spans"
    )


def test_tier_names() -> None:
    assert [check_tier(t) for t in TIERS] == ["hot", "cold", "all"]
    with pytest.raises(ValueError, match=r"unknown tier 'warm': use hot, cold or all"):
        check_tier("warm")


def test_warehouse_cwd_moves_only_the_querying_thread(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))  # not above the warehouse
    here = os.getcwd()
    seen: dict[str, str] = {}
    inside, outside = threading.Event(), threading.Event()

    def query() -> None:
        with warehouse_cwd(str(tmp_path)):
            seen["thread"] = os.getcwd()
            inside.set()
            outside.wait(10)  # the main thread looks while this one is at the warehouse
        seen["after"] = os.getcwd()

    worker = threading.Thread(target=query)
    worker.start()
    assert inside.wait(10)
    seen["main"] = os.getcwd()
    outside.set()
    worker.join(10)
    assert seen == {"thread": str(tmp_path), "main": here, "after": here}
    with warehouse_cwd(None):  # object storage: nothing to move
        assert os.getcwd() == here


class _FakeEngine:
    """Records statements; the hot path is not used here."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def query(self, sql: str, settings: dict[str, Any] | None = None) -> Any:
        self.statements.append(sql)
        raise AssertionError("no statement should reach the engine")

    def close(self) -> None:
        return None


@pytest.fixture
def endpoint() -> Iterator[QueryEndpoint]:
    ep = QueryEndpoint(_FakeEngine(), "spanline", port=0)  # no settings: hot tier only
    ep.start()
    yield ep
    ep.stop()


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url + "/query", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_endpoint_refuses_bad_tiers_before_the_engine(endpoint: QueryEndpoint) -> None:
    assert _post(endpoint.url, {"sql": "SELECT 1", "tier": "warm"}) == (
        400,
        {"error": "unknown tier 'warm': use hot, cold or all", "kind": "rejected"},
    )
    assert _post(endpoint.url, {"sql": "SELECT 1", "tier": 3})[0] == 400
    assert _post(endpoint.url, {"sql": "SELECT 1", "tier": "all"}) == (
        400,
        {"error": "this endpoint serves the hot tier only", "kind": "rejected"},
    )
    assert endpoint.client.statements == []


class _OldEndpoint(BaseHTTPRequestHandler):
    """An endpoint from before tiers: it ignores the field and answers from the hot tier."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"columns": ["n"], "types": ["UInt64"], "rows": [[1]]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def test_client_notices_an_endpoint_that_ignored_the_tier() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OldEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert HttpBackend(url, "spanline", timeout_s=5).query("SELECT 1").rows == [[1]]
        with pytest.raises(QueryError, match=r"does not serve --tier all: restart `spanline up`"):
            HttpBackend(url, "spanline", timeout_s=5, tier="all").query("SELECT 1")
    finally:
        server.shutdown()
        server.server_close()
