"""`spanline query`/`trace` as a person meets them: a pipeline started elsewhere is found,
cut results are announced, `| head` ends quietly, `trace --json` gives arrays (chdb)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spanline.core.broker import free_port
from spanline.query.commands import run_trace
from spanline.query.endpoint import QueryEndpoint
from spanline.settings import load_settings
from spanline.spans.pricing import PricingTable
from spanline.spans.rows import SpanRows
from spanline.writer.store import ClickHouseStore, connect
from tests.integration.writer.otlp import T0, traces

pytestmark = pytest.mark.integration

_HOLDER = """
import os, sys, time
from spanline.core.up_state import UpState, write_state, remove_state
from spanline.settings import load_settings
from spanline.writer.store import open_store
from spanline.query.endpoint import start_query_endpoint
s = load_settings(None)
store = open_store(s)
ep = start_query_endpoint(s)
write_state(UpState(os.getpid(), str(s.data_dir.resolve()), ep.url, time.time()))
print("ready", flush=True)
sys.stdin.readline()
remove_state(os.getpid()); ep.stop(); store.close()
"""


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spanline.cli.main", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_query_finds_a_pipeline_started_from_another_directory(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPANLINE_")}
    base["XDG_RUNTIME_DIR"] = str(runtime)  # other pipelines on this machine stay out of it
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    # nothing runs: the answer names the data dir it looked at and how to point elsewhere
    done = _cli(["query", "SELECT 1"], base, elsewhere)
    assert done.returncode == 1
    assert str(elsewhere / ".spanline") in done.stderr and "SPANLINE_DATA_DIR" in done.stderr

    holder_env = {
        **base,
        "SPANLINE_DATA_DIR": str(tmp_path / "up-data"),
        "SPANLINE_WRITER_QUERY_PORT": str(free_port()),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER],
        env=holder_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        done = _cli(["query", "SELECT count() AS n FROM spans", "--format", "csv"], base, elsewhere)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["n", "0"]
        assert str(tmp_path / "up-data") in done.stderr and "SPANLINE_DATA_DIR" in done.stderr
        # an empty result still shows its header
        done = _cli(["query", "SELECT name, trace_id FROM spans"], base, elsewhere)
        assert done.stdout.splitlines()[0].split() == ["name", "trace_id"] and "(0 rows)" in done.stdout
        # old data in this directory: it is what is shown, and the live pipeline is named
        assert _cli(["migrate"], base, elsewhere).returncode == 0
        done = _cli(["query", "SELECT 1 AS one", "--format", "csv"], base, elsewhere)
        assert done.returncode == 0 and done.stdout.splitlines() == ["one", "1"], done.stderr
        assert f"showing the data in {elsewhere / '.spanline'}" in done.stderr
        assert f"SPANLINE_DATA_DIR={tmp_path / 'up-data'}" in done.stderr
    finally:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=30)


def test_truncation_is_announced_and_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPANLINE_")}
    env |= {"XDG_RUNTIME_DIR": str(tmp_path), "SPANLINE_DATA_DIR": str(tmp_path / "d")}
    env["SPANLINE_WRITER_QUERY_PORT"] = str(free_port())
    assert _cli(["migrate"], env, tmp_path).returncode == 0
    done = _cli(
        ["query", "SELECT number FROM numbers(50)"], {**env, "SPANLINE_WRITER_QUERY_MAX_ROWS": "20"}, tmp_path
    )
    assert done.returncode == 0 and "(20 rows)" in done.stdout
    assert "only the first 20 rows are shown; more matched" in done.stderr
    done = _cli(
        ["query", "SELECT number FROM numbers(20)"], {**env, "SPANLINE_WRITER_QUERY_MAX_ROWS": "20"}, tmp_path
    )
    assert "more matched" not in done.stderr
    piped = subprocess.run(
        f"{sys.executable} -m spanline.cli.main query 'SELECT number FROM numbers(100000)' | head -n 2",
        shell=True,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert len(piped.stdout.splitlines()) == 2
    assert "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr, piped.stderr


def test_trace_json_gives_events_and_links_as_arrays(
    store: ClickHouseStore, chdb_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace_id = bytes.fromhex("5bf92f3577b34da6a3ce929d0e0e4799")
    td = traces(trace_id, [{"span_id": 1, "name": "chat"}])
    span = td.resource_spans[0].scope_spans[0].spans[0]
    event = span.events.add(name="gen_ai.choice", time_unix_nano=T0 + 5)
    event.attributes.add(key="index").value.int_value = 0
    link = span.links.add(trace_id=b"\x07" * 16, span_id=b"\x08" * 8)
    del link
    rows = SpanRows(PricingTable.load())
    rows.add(td, "p", T0)
    store.insert("spans", rows.take())
    ep = QueryEndpoint(connect(chdb_dsn, readonly=True, database=store.database), store.database, port=0)
    ep.start()
    try:
        settings = load_settings(
            None,
            writer={
                "clickhouse_dsn": chdb_dsn,
                "database": store.database,
                "query_port": ep.port,
                "object_store_url": str(tmp_path / "objects"),
            },
        )
        assert run_trace(settings, trace_id.hex(), as_json=True) == 0
    finally:
        ep.stop()
    doc = json.loads(capsys.readouterr().out)
    (only,) = doc["spans"]
    assert isinstance(only["events"], list) and only["events"][0]["name"] == "gen_ai.choice"
    assert isinstance(only["links"], list) and len(only["links"]) == 1
