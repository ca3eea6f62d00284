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
from spanline.scorer.judging.evaluators import load_evaluators
from spanline.scorer.service import build
from spanline.settings import Settings
from spanline.spans.score_records import is_score_set, unpack_scores
from spanline.v1.spanline_pb2 import Score
from tests.conftest import settings_env
from tests.integration.alerter.conftest import wait_ready
from tests.support.judge_stub import JudgeStub
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
        scores = unpack_scores(m.value)
        assert {s.trace_id for s in scores} == {m.key}
        out[m.key] += scores
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
            min_messages=len(ids),
            timeout_s=40,
        )
        dlq = await read_topic(settings.kafka.bootstrap, settings.topics.redacted + ".dlq", min_messages=2)
    # a trace's heuristic scores travel in one record
    assert all(is_score_set(m.value) for m in scores) and len({m.key for m in scores}) == len(scores)
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


def _scorer(settings: Settings, port: int, log: Path, judge_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **settings_env(settings),
        # every trace sampled, so each judge call per trace can be counted
        "SPANLINE_SCORER_JUDGE_ENABLED": "true",
        "SPANLINE_SCORER_JUDGE_BASE_URL": judge_url,
        "SPANLINE_SCORER_JUDGE_MODEL": "judge",
        "SPANLINE_SCORER_JUDGE_API_KEY": "test-key",
        "SPANLINE_SCORER_JUDGE_SAMPLE_RATE": "1.0",
        "SPANLINE_SCORER_JUDGE_RPM": "60000",
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
    judge = JudgeStub().__enter__()
    proc = _scorer(settings, port, tmp_path / "scorer.log", judge.base_url)
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
            min_messages=len(first),
            timeout_s=30,
        )
        # their judge calls finish and are committed (a call in flight at a crash is made
        # again after it: the documented limit, not what this test is about)
        for _ in range(300):
            if len(judge.seen) >= len(first) * len(load_evaluators(None)):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
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
        proc = _scorer(settings, port, tmp_path / "scorer.log", judge.base_url)
        await wait_ready(port)
        # records per trace: its deterministic scores (one set), the sampling record and one
        # verdict per evaluator
        per_trace = 2 + len(load_evaluators(None))
        want = (len(first) + len(second)) * per_trace
        calls = (len(first) + len(second)) * len(load_evaluators(None))
        for _ in range(300):  # the judge runs in the background: wait for its calls
            if len(judge.seen) >= calls:
                break
            await asyncio.sleep(0.1)
        scores = await read_topic(
            settings.kafka.bootstrap, settings.topics.scores, min_messages=want, timeout_s=40, settle_s=6
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        judge.__exit__(None, None, None)
    by_trace = _by_trace(scores)
    evaluators = len(load_evaluators(None))
    judged = defaultdict(set)
    for tid, got in by_trace.items():
        for s in got:
            if s.evaluator_kind == "llm_judge":
                judged[tid].add(s.name)
    counts = [len(judged[t]) for t in first + second]
    assert all(c == evaluators for c in counts), (counts, len(judge.seen))
    # no trace judged twice: one endpoint call per trace and evaluator, across the SIGKILL
    prompts = [str(seen.body["messages"][-1]["content"])[-300:] for seen in judge.seen]
    repeated = [p for p in set(prompts) if prompts.count(p) > 1]
    assert len(judge.seen) == (len(first) + len(second)) * evaluators, (len(repeated), repeated[:1])
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
