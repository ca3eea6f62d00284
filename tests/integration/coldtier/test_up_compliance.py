"""Legal hold and audit archives against a real `spanline up` (the writer owns the embedded
hot store): `spanline hold set|release` changes the hot TTL through the writer, and
`spanline archive export` takes every span of the range, hot or cold, exactly once."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spanline.loadgen.genai_traces import build_trace_set
from tests.integration.pipeline.test_hot_store import _send_requests
from tests.integration.up.upctl import Up, spanline, up_env

pytestmark = pytest.mark.integration


def _query(sql: str, env: dict[str, str]) -> list[list[str]]:
    result = spanline("query", sql, "--format", "csv", env=env)
    assert result.returncode == 0, result.stderr
    return list(csv.reader(io.StringIO(result.stdout)))[1:]


TTL_SQL = "SELECT create_table_query FROM system.tables WHERE database = 'spanline' AND name = 'spans'"


def test_hold_and_archive_under_spanline_up(tmp_path: Path) -> None:
    env = {
        **up_env(tmp_path),
        "SPANLINE_COLDTIER_ERASURE_POLL_S": "0.2",
        "SPANLINE_COLDTIER_BATCH_MAX_WAIT_S": "0.5",
    }
    up = Up(env)
    try:
        up.wait_banner()
        trace_set = build_trace_set(40, 10, seed=5)
        deadline = time.monotonic() + 60
        while True:  # ingest may still be starting
            try:
                _send_requests(up.ingest_target, [r.SerializeToString() for r in trace_set.requests])
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        rows: list[list[str]] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            rows = _query("SELECT project_id, count() FROM spans GROUP BY project_id", env)
            if rows and sum(int(r[1]) for r in rows) >= trace_set.span_count:
                break
            time.sleep(1)
        assert rows, "no spans reached the hot tier"
        project, hot_count = rows[0][0], int(rows[0][1])

        held = spanline("hold", "set", project, "--reason", "case 7", "--by", "legal", env=env)
        assert held.returncode == 0, held.stdout + held.stderr
        assert f"retention deletes skip projects on hold ({project})" in held.stdout
        assert f"NOT IN ('{project}')" in _query(TTL_SQL, env)[0][0]

        priv = tmp_path / "key"
        assert spanline("archive", "keygen", "--out", str(priv), env=env).returncode == 0
        now = datetime.now(UTC)
        bag = tmp_path / "bag"
        export = spanline(
            "archive", "export", "--project", project,
            "--from", (now - timedelta(days=1)).isoformat(), "--to", (now + timedelta(hours=1)).isoformat(),
            "--key", f"{priv}.pem", "--out", str(bag), env=env,
        )  # fmt: skip
        assert export.returncode == 0, export.stdout + export.stderr
        assert f"spans={hot_count}," in export.stdout, export.stdout
        verify = spanline("archive", "verify", str(bag), "--pubkey", f"{priv}.pub.pem", env=env)
        assert verify.returncode == 0, verify.stderr

        released = spanline("hold", "release", project, "--reason", "closed", "--by", "legal", env=env)
        assert released.returncode == 0, released.stdout + released.stderr
        assert "NOT IN" not in _query(TTL_SQL, env)[0][0]
        assert up.interrupt() == 0, up.err[-2000:]
    finally:
        up.kill()
