"""Query endpoint, `spanline query`/`spanline trace`, and the 3 MB payload round trip (chdb)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from spanline.core.broker import free_port
from spanline.query.client import HttpBackend, QueryError, open_backend
from spanline.query.commands import run_query, run_trace
from spanline.query.endpoint import QueryEndpoint
from spanline.settings import Settings, load_settings
from spanline.spans.object_store import LocalObjectStore, PayloadOffloader, parse_ref
from spanline.spans.pricing import PricingTable
from spanline.spans.rows import ScoreRows, SpanRows
from spanline.v1.spanline_pb2 import Score
from spanline.writer.store import ClickHouseStore, connect
from tests.integration.writer.otlp import T0, traces

pytestmark = pytest.mark.integration

TRACE = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")


@pytest.fixture
def endpoint(store: ClickHouseStore, chdb_dsn: str):  # type: ignore[no-untyped-def]
    ep = QueryEndpoint(connect(chdb_dsn, readonly=True, database=store.database), store.database, port=0)
    ep.start()
    yield ep
    ep.stop()


def _settings(chdb_dsn: str, store: ClickHouseStore, port: int, objects: Path) -> Settings:
    return load_settings(
        None,
        writer={
            "clickhouse_dsn": chdb_dsn,
            "database": store.database,
            "query_port": port,
            "object_store_url": str(objects),
        },
    )


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url + "/query", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_endpoint_is_read_only(endpoint: QueryEndpoint, store: ClickHouseStore) -> None:
    ok = {"Content-Type": "application/json"}
    status, body = _post(endpoint.url, json.dumps({"sql": "SELECT count() FROM spans"}).encode(), ok)
    assert status == 200 and body["rows"] == [[0]]
    for sql in (
        f"INSERT INTO {store.database}.spans (project_id) VALUES ('x')",
        f"DROP TABLE {store.database}.spans",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    ):
        status, body = _post(endpoint.url, json.dumps({"sql": sql}).encode(), ok)
        assert status == 400 and body["kind"] == "rejected", sql
    # a cross-site page cannot use it: no JSON content type, or a foreign Host (DNS rebinding)
    status, _ = _post(endpoint.url, json.dumps({"sql": "SELECT 1"}).encode(), {"Content-Type": "text/plain"})
    assert status == 415
    status, _ = _post(
        endpoint.url,
        json.dumps({"sql": "SELECT 1"}).encode(),
        {**ok, "Host": f"evil.example:{endpoint.port}"},
    )
    assert status == 403
    # the engine itself refuses writes on the endpoint's session, whatever the text check says
    with pytest.raises(Exception, match="readonly"):
        endpoint.client.command(f"DROP TABLE {store.database}.spans")
    assert store.client.command(f"EXISTS TABLE {store.database}.spans") == 1


def test_writes_and_queries_concurrently(endpoint: QueryEndpoint, store: ClickHouseStore) -> None:
    pricing = PricingTable.load()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(20):
                buf = SpanRows(pricing)
                buf.add(traces(os.urandom(16), [{"span_id": j + 1} for j in range(50)]), "p", T0 + i)
                store.insert("spans", buf.take())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    backend = HttpBackend(endpoint.url, store.database, timeout_s=10)
    seen = []
    while thread.is_alive():
        seen.append(backend.query("SELECT count() FROM spans").rows[0][0])
    thread.join()
    assert not errors
    assert backend.query("SELECT count() FROM spans").rows == [[1000]]
    assert seen == sorted(seen)


def test_three_megabyte_payload_round_trip_through_spanline_trace(
    store: ClickHouseStore,
    endpoint: QueryEndpoint,
    chdb_dsn: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rng = os.urandom(1_200_000)
    big = json.dumps([{"role": "user", "parts": [{"type": "text", "content": rng.hex() + "é✓"}]}])
    assert len(big.encode()) > 2_400_000
    tool_out = "résultat " * 40_000  # ~400 kB, also over the threshold
    offloader = PayloadOffloader(LocalObjectStore(tmp_path / "objects"), 256 * 1024)
    buf = SpanRows(PricingTable.load(), offloader)
    genai = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5-20250929",
        "gen_ai.usage.input_tokens": 900_000,
        "gen_ai.usage.output_tokens": 1000,
        "gen_ai.input.messages": big,
    }
    spec = [
        {
            "span_id": 1,
            "name": "invoke_agent triage",
            "dur_ms": 3000,
            "attrs": {"gen_ai.operation.name": "invoke_agent"},
        },
        {"span_id": 2, "parent": 1, "name": "chat claude", "start_ms": 10, "dur_ms": 2000, "attrs": genai},
        {
            "span_id": 3,
            "parent": 2,
            "name": "execute_tool fetch",
            "start_ms": 2100,
            "dur_ms": 500,
            "status": 2,
            "attrs": {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "fetch",
                "gen_ai.tool.call.result": tool_out,
            },
        },
    ]
    buf.add(traces(TRACE, spec, service="support-bot"), "default", T0)
    table = buf.take()
    stored = table.column("input_messages").to_pylist()[1]
    assert parse_ref(stored) is not None  # the row holds a reference, not 2.4 MB
    store.insert("spans", table)
    store.insert("spans", table)  # replayed: still one span each below
    scores = ScoreRows()
    scores.add(
        Score(
            score_id="sc1",
            trace_id=TRACE,
            span_id=(2).to_bytes(8, "big"),
            name="helpfulness",
            score_value=0.75,
            evaluator_kind="llm_judge",
        ),
        "default",
        T0,
    )
    store.insert("scores", scores.take())
    settings = _settings(chdb_dsn, store, endpoint.port, tmp_path / "objects")

    assert run_trace(settings, TRACE.hex(), as_json=True) == 0
    doc = json.loads(capsys.readouterr().out)
    spans = {s["name"]: s for s in doc["spans"]}
    assert len(doc["spans"]) == 3
    chat = spans["chat claude"]
    assert chat["input_messages"] == big  # byte for byte
    assert hashlib.sha256(chat["input_messages"].encode()).hexdigest() == parse_ref(stored).sha256  # type: ignore[union-attr]
    assert spans["execute_tool fetch"]["tool_result"] == tool_out
    assert chat["depth"] == 1 and spans["execute_tool fetch"]["depth"] == 2
    assert chat["cost_usd"] == pytest.approx((900_000 * 3 + 1000 * 15) / 1e6)
    assert doc["scores"][0]["name"] == "helpfulness"

    assert run_trace(settings, TRACE.hex()) == 0
    text = capsys.readouterr().out
    assert "invoke_agent triage  [support-bot]" in text
    assert "└─ chat claude" in text and "   └─ execute_tool fetch" in text
    assert "anthropic/claude-sonnet-4-5-20250929" in text and "900000→1000" in text
    assert "ERROR" in text and "helpfulness" in text and "1 error" in text

    assert (
        run_query(settings, "SELECT name, input_messages_bytes FROM spans ORDER BY start_time", fmt="csv")
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "name,input_messages_bytes" and out[2] == f"chat claude,{len(big.encode())}"
    assert run_query(settings, "DELETE FROM spans WHERE 1") == 1
    assert "read-only" in capsys.readouterr().err
    assert run_trace(settings, "0" * 31 + "1") == 1
    assert "not found" in capsys.readouterr().err


_HOLDER = """
import sys, time
from spanline.settings import load_settings
from spanline.writer.store import open_store
from spanline.query.endpoint import start_query_endpoint
s = load_settings(None)
store = open_store(s)
ep = start_query_endpoint(s)
print("ready", flush=True)
sys.stdin.readline()
ep.stop(); store.close()
"""


def test_cli_while_another_process_owns_the_engine(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SPANLINE_DATA_DIR": str(tmp_path / "data"), "SPANLINE_WRITER_QUERY_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        settings = load_settings(None, data_dir=str(tmp_path / "data"), writer={"query_port": port})
        backend = open_backend(settings)
        assert isinstance(backend, HttpBackend)
        assert backend.query("SELECT count() FROM spans").rows == [[0]]
        wrong = load_settings(None, data_dir=str(tmp_path / "data"), writer={"query_port": free_port()})
        with pytest.raises(QueryError, match="in use by another process"):
            open_backend(wrong)
    finally:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=30)
    assert proc.returncode == 0
    # once the owner is gone, a fresh `spanline query` opens the engine directly
    done = subprocess.run(
        [sys.executable, "-m", "spanline.cli.main", "query", "SELECT count() FROM spans", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"count()": 0}]
