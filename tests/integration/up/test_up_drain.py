"""Ctrl-C right after a load run loses nothing: every acknowledged span is stored.

The bundled broker holds topics in memory, so anything a stage has not consumed when
`up` stops is gone; the drain must let every stage consume its input first.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest

from spanline.core.kafka import Producer
from spanline.core.kafka.records import OutRecord, standard_headers
from spanline.core.settings import KafkaSettings, TopicSettings
from spanline.loadgen.request_pool import RequestPool
from tests.integration.up.upctl import Up, spanline, up_env

pytestmark = pytest.mark.integration

SPANS = 20_000
BURST_TRACES = 4_000


async def _burst_into_raw(bootstrap: str, traces: int) -> None:
    """``traces`` heavy 5-span traces on ``spanline.raw``, as ingest writes them."""
    pool = RequestPool(5, profile="heavy")
    producer = Producer(KafkaSettings(bootstrap=bootstrap))
    await producer.start()
    try:
        headers = standard_headers("default", time.time_ns(), b"traces")
        await producer.send_all(
            [OutRecord(TopicSettings().raw, pool.next()[0], None, headers) for _ in range(traces)]
        )
    finally:
        await producer.stop()


# two whole pipelines start and drain one after the other: over the suite's 180 s default when
# the test workers share two cores
@pytest.mark.timeout(420)
def test_ctrl_c_after_loadgen_keeps_every_acknowledged_span(tmp_path: Path) -> None:
    env = up_env(tmp_path)
    up = Up(env)
    try:
        up.wait_banner()
        load = spanline(
            "loadgen",
            "--target",
            up.ingest_target,
            "--spans",
            str(SPANS),
            "--concurrency",
            "8",
            "--json",
            env=env,
            timeout=300,
        )
        assert load.returncode == 0, load.stdout + load.stderr
        result = json.loads(load.stdout)
        assert result["spans_acked"] == SPANS, result
        code = up.interrupt()
    finally:
        up.kill()
    assert code == 0, up.out[-4000:] + up.err[-2000:]
    assert "input drained" in up.out, up.out[-4000:]
    assert "left unprocessed" not in up.out
    stops = [up.out.find(f"{s} stopped (exit 0)") for s in ("ingest", "redactor", "writer")]
    assert -1 not in stops and stops == sorted(stops), up.out[-4000:]

    again = Up(env)  # the broker was in memory: only what the writer stored survives
    try:
        again.wait_banner()
        counted = spanline(
            "query",
            "SELECT count(), uniqExact(trace_id, span_id) FROM spans",
            "--no-final",
            "--format",
            "csv",
            env=env,
        )
        assert counted.returncode == 0, counted.stderr
        assert counted.stdout.strip().splitlines()[-1] == f"{SPANS},{SPANS}", counted.stdout
    finally:
        again.interrupt()
        again.kill()


def test_a_drain_cut_short_says_how_many_records_per_topic_were_left(tmp_path: Path) -> None:
    env = up_env(tmp_path)
    up = Up(env, "--drain-timeout", "0")
    try:
        up.wait_banner()
        load = spanline("loadgen", "--target", up.ingest_target, "--spans", str(SPANS), "--json", env=env)
        assert load.returncode == 0, load.stdout + load.stderr
        # A redactor that keeps up with loadgen can consume its whole backlog while it stops
        # (it finishes the batch in hand): a burst straight into raw leaves it more than that.
        asyncio.run(_burst_into_raw(up.bootstrap, BURST_TRACES))
        code = up.interrupt()
    finally:
        up.kill()
    assert code == 1, up.out[-3000:]
    assert "grace period of 0s ran out" in up.out
    line = next(x for x in up.out.splitlines() if "records left unprocessed" in x)
    # every stage may have a backlog; the order of the list is the stages' stop order
    assert "(lost with the in-memory broker): " in line, line
    assert re.search(r"spanline\.raw [\d,]+ \(redactor\)", line), line
