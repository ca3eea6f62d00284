"""`spanline up` as a user runs it: one command, data in, query out, Ctrl-C stops everything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spanline.core.broker import free_port
from spanline.loadgen.genai_traces import build_trace_set
from tests.integration.pipeline.test_hot_store import _send_requests

pytestmark = pytest.mark.integration


def test_up_ingests_queries_and_stops_cleanly(tmp_path: Path) -> None:
    ingest_port, query_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SPANLINE_")},
        "SPANLINE_DATA_DIR": str(tmp_path / "data"),
        "SPANLINE_INGEST_PORT": str(ingest_port),
        "SPANLINE_WRITER_QUERY_PORT": str(query_port),
        "SPANLINE_WRITER_BATCH_MAX_WAIT_S": "0.3",
    }
    up = subprocess.Popen(
        [sys.executable, "-m", "spanline.cli.main", "up", "--http-base-port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a shell runs a foreground job
    )
    lines: list[str] = []
    try:
        assert up.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        banner = "".join(lines)
        assert f"OTLP/gRPC ingest on 127.0.0.1:{ingest_port}" in banner, banner
        for service in ("ingest", "redactor", "writer"):
            assert service in banner

        trace_set = build_trace_set(500, 100, seed=21, plant_pii=True)
        sent_at = time.monotonic()
        while True:  # ingest may still be starting
            try:
                _send_requests(
                    f"127.0.0.1:{ingest_port}", [r.SerializeToString() for r in trace_set.requests]
                )
                break
            except Exception:
                if time.monotonic() - sent_at > 60:
                    raise
                time.sleep(0.5)

        count = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "spanline.cli.main",
                    "query",
                    "SELECT count() FROM spans",
                    "--format",
                    "csv",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            count = (
                result.stdout.strip().splitlines()[-1]
                if result.returncode == 0 and result.stdout.strip()
                else result.stderr
            )
            if count == "500":
                break
            time.sleep(1)
        assert count == "500", count
        dump = subprocess.run(
            [
                sys.executable,
                "-m",
                "spanline.cli.main",
                "query",
                "SELECT input_messages, output_messages FROM spans",
                "--format",
                "json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert not [p.value for p in trace_set.planted if p.value in dump]
    finally:
        os.killpg(up.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground group
        out, _ = up.communicate(timeout=90)
    text = "".join(lines) + out
    assert up.returncode == 0, text[-3000:]
    # the services stop in pipeline order, each drained by `up`, none restarted on the way
    assert "restarting" not in text, text[-3000:]
    stops = [text.find(f"{service} stopped (exit 0)") for service in ("ingest", "redactor", "writer")]
    assert -1 not in stops and stops == sorted(stops), text[-3000:]
    assert "broker stopped" in text
