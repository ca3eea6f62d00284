"""`spanline query --tier all` and `spanline trace` while the writer owns the embedded hot
store: the writer's query endpoint runs the cross-tier statement (the CLI, another process,
cannot open the store), each span is counted once across the watermark, a trace only the
cold tier still holds is found, and bad input gets a clear answer."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from spanline.coldtier.crosstier import OWNER_QUERY_MAX_MEMORY
from spanline.coldtier.governance import GovernanceStore
from spanline.coldtier.service import ColdStrategy
from spanline.coldtier.tables import ensure_tables
from spanline.core.broker import free_port
from spanline.core.kafka.records import InMessage
from spanline.settings import Settings, load_settings
from spanline.writer.service import WriteStrategy
from spanline.writer.store import open_store
from tests.integration.coldtier.conftest import trace_value
from tests.integration.coldtier.running_writer import running_writer

pytestmark = pytest.mark.integration

DAY_NS = 86_400 * 10**9
HOT_DAYS = 7
_OFFSETS = itertools.count()


def _messages(settings: Settings, days_ago: float, trace_ids: list[bytes], n_spans: int) -> list[InMessage]:
    """One record per trace, each at its own offset (the coldtier skips offsets it committed)."""
    t0 = time.time_ns() - int(days_ago * DAY_NS)
    headers = [("spanline-project", b"p1"), ("spanline-signal", b"traces")]
    return [
        InMessage(
            settings.topics.redacted, 0, next(_OFFSETS), b"k", trace_value(t, n_spans, t0=t0), headers, 0
        )
        for t in trace_ids
    ]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spanline.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _post(url: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url + "/query", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        return exc.code, dict(json.loads(exc.read()))


def test_query_all_and_trace_while_the_writer_owns_the_hot_store(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    s = load_settings(None, data_dir=str(data), retention={"hot_days": HOT_DAYS}, writer={"query_port": port})
    only_cold = os.urandom(16)
    hour = 1 / 24
    # inside the hot window (one within an hour of its end): counted from the hot tier
    recent = _messages(s, 0.1, [os.urandom(16) for _ in range(3)], 3)
    recent += _messages(s, HOT_DAYS - hour, [os.urandom(16)], 3)
    # just past the hot TTL (the writer drops it on insert) and long past: from the cold tier
    old = _messages(s, HOT_DAYS + hour / 60, [os.urandom(16)], 3)
    old += _messages(s, HOT_DAYS + 13, [os.urandom(16) for _ in range(2)], 3)
    cold_only = _messages(s, HOT_DAYS + 23, [only_cold], 2)  # never reached the hot tier
    expected = 4 * 3 + 3 * 3 + 2

    # the real coldtier commits every span; the real writer's strategy inserts the others
    _, tables = ensure_tables(s)
    asyncio.run(ColdStrategy(s, tables, GovernanceStore.from_settings(s)).process(recent + old + cold_only))
    store = open_store(s)
    asyncio.run(WriteStrategy(s, store, None).process(recent + old))  # type: ignore[arg-type]

    env = {k: v for k, v in os.environ.items() if not k.startswith("SPANLINE_")}
    env |= {
        "SPANLINE_DATA_DIR": str(data),
        "SPANLINE_WRITER_QUERY_PORT": str(port),
        "SPANLINE_RETENTION_HOT_DAYS": str(HOT_DAYS),
        "XDG_RUNTIME_DIR": str(tmp_path),  # other pipelines on this machine stay out of it
    }
    with running_writer(s, store) as writer:
        url = writer._endpoint.url  # type: ignore[attr-defined]
        sql = (
            "SELECT count() AS n, uniqExact(trace_id, span_id) AS u, "
            f"countIf(start_time >= now('UTC') - INTERVAL {HOT_DAYS} DAY) AS recent FROM spans"
        )
        started = time.monotonic()
        done = _cli(env, "query", "--tier", "all", "--format", "csv", sql)
        assert done.returncode == 0, done.stderr
        assert list(csv.reader(io.StringIO(done.stdout)))[1] == [str(expected), str(expected), "12"]
        all_s = time.monotonic() - started

        # the cold tier alone holds every span, the hot tier the 12 recent ones
        done = _cli(env, "query", "--tier", "cold", "--format", "csv", "SELECT count() FROM spans")
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[1] == str(expected)
        status, answer = _post(url, {"sql": "SELECT count() FROM spans", "tier": "hot"})
        assert (status, answer["rows"], answer["tier"]) == (200, [[12]], "hot")
        # the writer's cross-tier statements have their own memory cap below the engine's
        status, answer = _post(url, {"sql": "SELECT getSetting('max_memory_usage')", "tier": "all"})
        assert (status, answer["rows"]) == (200, [[OWNER_QUERY_MAX_MEMORY]])

        done = _cli(env, "trace", only_cold.hex())
        assert done.returncode == 0, done.stderr
        assert only_cold.hex() in done.stdout

        # bad input: refused with the reason, before any engine or catalog work
        done = _cli(env, "query", "--tier", "all", "DROP TABLE spans")
        assert done.returncode == 1
        assert "only read-only statements are allowed" in done.stderr
        done = _cli(env, "query", "--tier", "warm", "SELECT 1")
        assert done.returncode == 2 and "invalid choice: 'warm'" in done.stderr
        status, answer = _post(url, {"sql": "SELECT count() FROM spans", "tier": "warm"})
        assert status == 400 and answer["error"] == "unknown tier 'warm': use hot, cold or all"
        status, answer = _post(url, {"sql": "INSERT INTO spans SELECT * FROM spans", "tier": "all"})
        assert status == 400 and "only read-only statements are allowed" in str(answer["error"])
        status, answer = _post(url, {"sql": "SELECT * FROM file('/etc/passwd')", "tier": "cold"})
        assert status == 400 and "file() is not available" in str(answer["error"])
        status, answer = _post(url, {"sql": "SELECT nope FROM spans", "tier": "all"})
        assert status == 422 and "nope" in str(answer["error"])
    print(f"query --tier all under a running writer: {all_s:.2f} s (CLI process start included)")
