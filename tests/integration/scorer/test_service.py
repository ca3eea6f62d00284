"""The scorer service on the real bundled broker: traces in, one deterministic score set
per trace out on ``spanline.scores``; garbage to the DLQ; SIGKILL with open traces."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from spanline.core.broker import free_port
from spanline.core.kafka import OutRecord, Producer
from spanline.core.kafka.admin import create_topics
from spanline.scorer.service import build
from spanline.settings import Settings
from spanline.v1.spanline_pb2 import Score
from tests.conftest import settings_env
from tests.integration.alerter.conftest import wait_ready
from tests.support.kafka import read_topic
from tests.support.scorer_traces import records, trace_spans
from tests.support.services import ServiceThread

pytestmark = pytest.mark.integration

FAST = {"quiet_after_root_s": 0.5, "quiet_no_root_s": 1.5, "tick_interval_s": 0.2, "batch_max_wait_s": 0.05}
# every trace of trace_spans() gets these (ttft, cost need attributes it does not set)
EXPECTED = {
    "error", "latency_ms", "input_tokens", "output_tokens", "tool_errors",
    "empty_output", "refusal",
}  # fmt: skip


async def _send(settings: Settings, items: list[OutRecord]) -> None:
    producer = Producer(settings.kafka)
    await producer.send_all(items)
    await producer.stop()


def _by_trace(messages: list[Any]) -> dict[bytes, list[Score]]:
    out: dict[bytes, list[Score]] = defaultdict(list)
    for m in messages:
        s = Score.FromString(m.value)
        assert m.key == s.trace_id
        out[s.trace_id].append(s)
    return out


async def test_traces_in_one_score_set_each_and_garbage_to_dlq(make_settings: Any) -> None:
    settings = make_settings(scorer=FAST)
    await create_topics(settings.kafka, settings.topics, settings.retention)
    ids = [os.urandom(16) for _ in range(30)]
    items: list[OutRecord] = []
    for i, tid in enumerate(ids):
        items += records(settings.topics.redacted, tid, trace_spans(tid, 3, error=i % 5 == 0))
    garbage = [
        OutRecord(settings.topics.redacted, b"\xff\xfe not protobuf", os.urandom(16)),
        OutRecord(settings.topics.redacted, items[0].value[:-7], items[0].key),  # truncated
    ]
    with ServiceThread(build(settings)):
        await _send(settings, items + garbage)
        scores = await read_topic(
            settings.kafka.bootstrap,
            settings.topics.scores,
            min_messages=len(ids) * len(EXPECTED),
            timeout_s=40,
        )
        dlq = await read_topic(settings.kafka.bootstrap, settings.topics.redacted + ".dlq", min_messages=2)
    by_trace = _by_trace(scores)
    assert set(by_trace) == set(ids)
    for i, tid in enumerate(ids):
        names = [s.name for s in by_trace[tid]]
        assert len(names) == len(set(names)), "a trace scored twice"
        assert EXPECTED <= set(names)
        got = {s.name: s for s in by_trace[tid]}
        assert got["error"].score_value == (1.0 if i % 5 == 0 else 0.0)
        assert got["input_tokens"].score_value == 120.0
        assert got["latency_ms"].score_value == pytest.approx(900.0)
        assert all(s.evaluator_kind == "heuristic" for s in by_trace[tid])
        assert all(s.attributes["spanline.trace.completion_reason"] == "complete" for s in by_trace[tid])
    assert len(dlq) == 2


def _scorer(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **settings_env(settings),
        "SPANLINE_SCORER_QUIET_AFTER_ROOT_S": "4",
        "SPANLINE_SCORER_QUIET_NO_ROOT_S": "6",
        "SPANLINE_SCORER_TICK_INTERVAL_S": "0.2",
    }
    out = open(log, "ab")
    cmd = [sys.executable, "-m", "spanline.cli.main", "run", "scorer", "--http-port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    return proc


async def test_sigkill_with_open_traces_then_restart(make_settings: Any, tmp_path: Path) -> None:
    settings = make_settings()
    await create_topics(settings.kafka, settings.topics, settings.retention)
    first = [os.urandom(16) for _ in range(20)]
    second = [os.urandom(16) for _ in range(20)]
    port = free_port()
    proc = _scorer(settings, port, tmp_path / "scorer.log")
    try:
        await wait_ready(port)
        items: list[OutRecord] = []
        for tid in first:
            items += records(settings.topics.redacted, tid, trace_spans(tid, 2))
        await _send(settings, items)
        # the first traces close (quiet 4 s) and are scored
        await read_topic(
            settings.kafka.bootstrap,
            settings.topics.scores,
            min_messages=len(first) * len(EXPECTED),
            timeout_s=30,
        )
        # half of each later trace arrives, then the scorer dies with them open
        half: list[OutRecord] = []
        rest: list[OutRecord] = []
        for tid in second:
            spans = trace_spans(tid, 3)
            half += records(settings.topics.redacted, tid, spans[:2])
            rest += records(settings.topics.redacted, tid, spans[2:])
        await _send(settings, half)
        await asyncio.sleep(2.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        await _send(settings, rest)
        proc = _scorer(settings, port, tmp_path / "scorer.log")
        await wait_ready(port)
        want = (len(first) + len(second)) * len(EXPECTED)
        scores = await read_topic(
            settings.kafka.bootstrap, settings.topics.scores, min_messages=want, timeout_s=40, settle_s=6
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    by_trace = _by_trace(scores)
    assert set(by_trace) == set(first) | set(second)
    for tid in first + second:
        ids_by_name: dict[str, set[str]] = defaultdict(set)
        for s in by_trace[tid]:
            ids_by_name[s.name].add(s.score_id)
        assert EXPECTED <= set(ids_by_name)
        # replays repeat a score under its id, never as a second id for one evaluator
        assert all(len(v) == 1 for v in ids_by_name.values()), ids_by_name
    for tid in second:  # scored on the whole trace, after the restart
        got = {s.name: s for s in by_trace[tid]}
        assert got["input_tokens"].score_value == 120.0
