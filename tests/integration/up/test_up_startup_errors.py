"""Start-up errors a person can act on: one human line on stderr naming what to change,
a JSON log line, exit code 78 (permanent), and no crash loop behind a normal banner."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spanline.core.broker import free_port
from spanline.core.startup import EXIT_PERMANENT
from tests.integration.up.upctl import Up, spanline, up_env

pytestmark = pytest.mark.integration


def _json_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_a_taken_ingest_port_is_named_with_its_setting(tmp_path: Path) -> None:
    env = up_env(tmp_path)
    port = int(env["SPANLINE_INGEST_PORT"])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        up = Up(env)
        code = up.wait(60)
    assert code == EXIT_PERMANENT, up.out + up.err
    lines = up.err.strip().splitlines()
    assert len(lines) == 1, up.err
    assert f"port {port} on 127.0.0.1 is already in use" in lines[0]
    assert "ingest.port (SPANLINE_INGEST_PORT)" in lines[0]
    assert "Ctrl-C stops everything" not in up.out  # no banner for a pipeline that cannot run
    logged = _json_lines(tmp_path / "data" / "up.log")
    assert any(e.get("kind") == "port_in_use" and e["level"] == "error" for e in logged), logged


def test_a_second_up_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    first_env = up_env(tmp_path)
    first = Up(first_env)
    try:
        first.wait_banner()
        second_env = {**up_env(tmp_path), "SPANLINE_DATA_DIR": first_env["SPANLINE_DATA_DIR"]}
        second = Up(second_env)
        code = second.wait(60)
        assert code == EXIT_PERMANENT, second.out + second.err
        assert "is in use by another `spanline up`" in second.err
        assert f"(pid {first.proc.pid})" in second.err
        assert "SPANLINE_DATA_DIR" in second.err
        assert first.proc.poll() is None  # the running one is untouched
    finally:
        first.interrupt()
        first.kill()
    assert first.proc.returncode == 0, first.out[-3000:]


def test_an_unreachable_kafka_is_named(tmp_path: Path) -> None:
    env = {**up_env(tmp_path), "SPANLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    started = time.monotonic()
    up = Up(env)
    code = up.wait(90)
    assert code == EXIT_PERMANENT, up.out + up.err
    assert "cannot reach Kafka at 127.0.0.1:" in up.err
    assert "SPANLINE_KAFKA_BOOTSTRAP" in up.err
    assert time.monotonic() - started < 60


def test_a_service_with_a_permanent_error_is_not_restarted(tmp_path: Path) -> None:
    """Another process holds the embedded ClickHouse: the writer exits 78, up says why and stops."""
    env = up_env(tmp_path)
    holder_env = {**env, "SPANLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    holder_env["SPANLINE_WRITER_QUERY_PORT"] = str(free_port())
    log = open(tmp_path / "holder.log", "wb")
    holder = subprocess.Popen(
        [sys.executable, "-m", "spanline.cli.main", "run", "writer", "--http-port", "0"],
        env=holder_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while "writer ready" not in (tmp_path / "holder.log").read_text():
            assert holder.poll() is None and time.monotonic() < deadline, (
                tmp_path / "holder.log"
            ).read_text()
            time.sleep(0.2)
        up = Up(env)
        code = up.wait(120)
    finally:
        holder.terminate()
        holder.wait(30)
        log.close()
    assert code == EXIT_PERMANENT, up.out[-3000:] + up.err
    assert "writer cannot start: the embedded ClickHouse at" in up.err
    assert "restarting in" not in up.out
    assert "not restarting it" in up.out


def test_spanline_run_names_a_taken_metrics_port(tmp_path: Path) -> None:
    env = up_env(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = spanline("run", "ingest", "--http-port", str(port), env=env, timeout=60)
    assert result.returncode == EXIT_PERMANENT
    human = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert human == [
        f"spanline ingest: port {port} on 127.0.0.1 is already in use (another spanline up, or another "
        "program): stop it or use --http-port or set http.port (SPANLINE_HTTP_PORT) to pick another port"
    ], result.stderr
    logged = [json.loads(x) for x in result.stderr.splitlines() if x.startswith("{")]
    assert any(e.get("kind") == "port_in_use" for e in logged), result.stderr
