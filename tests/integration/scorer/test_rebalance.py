"""Two scorer instances, partitions moving between them mid-stream: nothing lost, nothing
doubled, no trace judged twice.

Real parts: the bundled broker, two `spanline run scorer` processes in one consumer group,
and the scripted OpenAI-compatible judge endpoint (every trace sampled). Each trace arrives
in three messages (two child spans, then the root), keyed by trace id as ingest keys them.
Scorer A sees the first spans alone; scorer B joins while every trace is open (partitions
move: A drops what it held open there, B replays it from the committed watermark); A is
stopped before the roots arrive (B takes every partition). A second set of traces is sent
whole to B. Then every trace must have each deterministic score under exactly one score id,
and the judge must have been called once per trace.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from spanline.core.broker import free_port
from spanline.settings import Settings
from spanline.spans.score_records import unpack_scores
from spanline.v1.spanline_pb2 import Score
from tests.conftest import settings_env
from tests.integration.coldtier.conftest import Record, produce
from tests.integration.writer.otlp import traces
from tests.support.judge_stub import JudgeStub
from tests.support.kafka import read_topic_sync, unique_prefix
from tests.support.services import ServiceProcess

pytestmark = pytest.mark.integration

EVALUATORS = """
evaluators:
  - name: answers_question
    version: "1"
    failure_mode: the answer does not address the question
    rubric: answer fail when the final answer does not address the user's question, else pass
    inputs: [input, output]
"""
N_MOVED = 30  # traces open while partitions move
N_AFTER = 10  # traces sent whole after A has left


def _record(settings: Settings, trace_id: bytes, span: int) -> Record:
    spec = {
        "span_id": span,
        "parent": None if span == 1 else 1,
        "name": "agent" if span == 1 else f"step {span}",
    }
    value = traces(trace_id, [spec]).SerializeToString()
    headers = [("spanline-project", b"p1"), ("spanline-signal", b"traces")]
    return (settings.topics.redacted, trace_id, value, headers)


def _metric(text: str, name: str) -> float:
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines() if line.startswith(name + " "))


def _scores(settings: Settings, min_messages: int) -> list[Score]:
    out = []
    for m in read_topic_sync(
        settings.kafka.bootstrap, settings.topics.scores, min_messages=min_messages, timeout_s=5, settle_s=1
    ):
        out += unpack_scores(m.value)
    return out


def _wait_scored(settings: Settings, expected: set[bytes], timeout_s: float) -> list[Score]:
    deadline = time.monotonic() + timeout_s
    scores: list[Score] = []
    while time.monotonic() < deadline:
        scores = _scores(settings, 1)
        if expected <= {s.trace_id for s in scores if s.name == "error"}:
            return scores
        time.sleep(1)
    missing = expected - {s.trace_id for s in scores if s.name == "error"}
    raise AssertionError(f"{len(missing)} traces without an error score")


def test_partitions_moving_between_two_scorers(make_settings: Any, tmp_path: Path) -> None:
    settings: Settings = make_settings(kafka={"group_prefix": unique_prefix("g")})
    evaluators = tmp_path / "evaluators.yaml"
    evaluators.write_text(EVALUATORS)
    moved = [os.urandom(16) for _ in range(N_MOVED)]
    after = [os.urandom(16) for _ in range(N_AFTER)]
    produce(settings, [_record(settings, t, 2) for t in moved])  # creates the topics too

    with JudgeStub() as judge:
        env = {
            **settings_env(settings),
            "SPANLINE_KAFKA_GROUP_PREFIX": settings.kafka.group_prefix,
            "SPANLINE_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "SPANLINE_SCORER_QUIET_AFTER_ROOT_S": "2",
            "SPANLINE_SCORER_QUIET_NO_ROOT_S": "120",
            "SPANLINE_SCORER_TICK_INTERVAL_S": "0.2",
            "SPANLINE_SCORER_JUDGE_ENABLED": "true",
            "SPANLINE_SCORER_JUDGE_BASE_URL": judge.base_url,
            "SPANLINE_SCORER_JUDGE_MODEL": "stub",
            "SPANLINE_SCORER_JUDGE_API_KEY": "test-key",
            "SPANLINE_SCORER_JUDGE_EVALUATORS_FILE": str(evaluators),
            "SPANLINE_SCORER_JUDGE_SAMPLE_RATE": "1.0",
            "SPANLINE_SCORER_JUDGE_RPM": "6000",
            "SPANLINE_SCORER_JUDGE_TPM": "10000000",
        }
        a = ServiceProcess("scorer", env, free_port(), tmp_path / "scorer-a.log").start(timeout=60)
        b = ServiceProcess("scorer", env, free_port(), tmp_path / "scorer-b.log")
        try:
            time.sleep(2)  # A holds the first spans of every trace open
            b.start(timeout=60)  # partitions move mid-stream
            produce(settings, [_record(settings, t, 3) for t in moved])
            time.sleep(3)
            # the move really happened with traces open: A handed its open traces over
            text = httpx.get(f"http://127.0.0.1:{a.http_port}/metrics", timeout=5).text
            assert _metric(text, "spanline_scorer_revoked_traces_total") > 0
            a.terminate(60)  # B takes every partition before the roots arrive
            produce(settings, [_record(settings, t, 1) for t in moved])
            produce(settings, [_record(settings, t, s) for t in after for s in (2, 3, 1)])
            try:
                scores = _wait_scored(settings, set(moved) | set(after), timeout_s=90)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\nA:\n{a.logs()[-2000:]}\nB:\n{b.logs()[-2000:]}") from None
            time.sleep(3)  # anything a replay would add arrives by now
            scores = _scores(settings, len(scores))
        finally:
            for proc in (b, a):
                if proc.proc is not None and proc.proc.poll() is None:
                    proc.terminate(60)

        ids: dict[tuple[bytes, str], set[str]] = defaultdict(set)
        for s in scores:
            ids[(s.trace_id, s.name)].add(s.score_id)
        # nothing doubled: one score id per trace and evaluator, whatever instance scored it
        doubled = {k: v for k, v in ids.items() if len(v) > 1}
        assert not doubled, f"{len(doubled)} (trace, evaluator) pairs with several score ids"
        # nothing lost: every trace has the deterministic scores, complete (root seen)
        for t in moved + after:
            assert (t, "error") in ids and (t, "latency_ms") in ids
        closes = Counter(
            s.attributes.get("spanline.trace.completion_reason") for s in scores if s.name == "error"
        )
        assert set(closes) == {"complete"}, closes
        # no trace judged twice: one judge call per trace, one verdict id per trace
        judged = {s.trace_id for s in scores if s.evaluator_kind == "llm_judge"}
        assert judged == set(moved) | set(after)
        assert len(judge.seen) == N_MOVED + N_AFTER
