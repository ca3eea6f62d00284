"""`spanline trace` shows a trace's scores per trace and per span, with what weighs them.

Spans and scores go through the writer's own processing step (WriteStrategy, the row
builders, a real chdb engine); the scores are built by the scorer's own functions, so the
attributes the trace view reads are the ones the scorer writes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from spanline.core.kafka import InMessage
from spanline.core.kafka.records import H_PROJECT, H_RECEIVED_AT, H_SIGNAL
from spanline.query.commands import run_trace
from spanline.query.endpoint import QueryEndpoint
from spanline.scorer.judging.evaluators import Evaluator
from spanline.scorer.judging.records import judge_score, sampling_record
from spanline.scorer.judging.sampling import SamplingDecision
from spanline.scorer.scores import A_CLOSE_REASON, A_COMPLETE, KIND_HEURISTIC, new_score
from spanline.scorer.trace import CompletedTrace
from spanline.settings import Settings, load_settings
from spanline.spans.object_store import LocalObjectStore, PayloadOffloader
from spanline.v1.spanline_pb2 import Score
from spanline.writer.service import WriteStrategy
from spanline.writer.store import ClickHouseStore, connect
from tests.integration.writer.otlp import T0, traces

pytestmark = pytest.mark.integration

TRACE = bytes.fromhex("5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e")
ROOT, CHAT, TOOL = (1).to_bytes(8, "big"), (2).to_bytes(8, "big"), (3).to_bytes(8, "big")


@pytest.fixture
def endpoint(store: ClickHouseStore, chdb_dsn: str) -> Iterator[QueryEndpoint]:
    ep = QueryEndpoint(connect(chdb_dsn, readonly=True, database=store.database), store.database, port=0)
    ep.start()
    yield ep
    ep.stop()


def _scores() -> list[Score]:
    trace = CompletedTrace(
        project_id="default",
        trace_id=TRACE,
        spans=[],
        logs=[],
        root=None,
        route="support",
        model="gpt-4o",
        environment="prod",
        close_reason="max_age",
    )
    closed = {A_CLOSE_REASON: "max_age", A_COMPLETE: "false"}
    heuristics = [
        new_score(
            project_id="default",
            trace_id=TRACE,
            span_id=ROOT,
            name=name,
            version="1",
            kind=KIND_HEURISTIC,
            value=value,
            label=label,
            time_unix_nano=T0,
            attributes=closed,
        )
        for name, value, label in (
            ("error", 1.0, "fail"),
            ("latency_ms", 2500.0, ""),
            ("cost_usd", 0.0123, ""),
        )
    ]
    decision = SamplingDecision(
        stratum="bulk:support|gpt-4o|prod",
        reason="stratum",
        design_probability=0.05,
        probability=0.05,
        key=0.01,
        policy_version="p1",
    )
    evaluator = Evaluator(
        name="groundedness",
        version="2",
        failure_mode="answer not backed by the tool result",
        rubric="fail when the answer states facts the tool result does not contain",
        inputs=("output",),
    )
    # the root is not in CompletedTrace.spans here: pin the span the judge attaches to
    judged = judge_score(trace, evaluator, decision, passed=False, explanation="invents a refund", now_ns=T0)
    judged.span_id = ROOT
    tone = evaluator.model_copy(update={"name": "tone"})
    failed = judge_score(trace, tone, decision, passed=None, error_type="timeout", now_ns=T0)
    failed.span_id = ROOT
    record = sampling_record(trace, decision, now_ns=T0)
    record.span_id = ROOT
    # an SDK's own evaluation of one tool call: a span score (no trace window behind it)
    tool = Score(
        score_id="sdk-tool-1",
        trace_id=TRACE,
        span_id=TOOL,
        name="tool_result_valid",
        score_value=0.0,
        score_label="invalid",
        evaluator_kind="sdk",
        time_unix_nano=T0,
    )
    return [*heuristics, judged, failed, record, tool]


def _write(store: ClickHouseStore, settings: Settings, tmp_path: Path) -> None:
    strategy = WriteStrategy(
        settings, store, PayloadOffloader(LocalObjectStore(tmp_path / "objects"), 1 << 20)
    )
    spec = [
        {"span_id": 1, "name": "agent support", "dur_ms": 2500},
        {"span_id": 2, "parent": 1, "name": "chat gpt-4o", "start_ms": 5, "dur_ms": 900},
        {
            "span_id": 3,
            "parent": 2,
            "name": "execute_tool refund",
            "start_ms": 950,
            "dur_ms": 40,
            "status": 2,
        },
    ]
    headers = [(H_PROJECT, b"default"), (H_SIGNAL, b"traces"), (H_RECEIVED_AT, str(T0).encode())]
    batch = [
        InMessage(settings.topics.redacted, 0, 0, None, traces(TRACE, spec).SerializeToString(), headers)
    ]
    for i, score in enumerate(_scores()):
        batch.append(
            InMessage(
                settings.topics.scores, 0, i, TRACE, score.SerializeToString(), headers[:1] + headers[2:]
            )
        )
    outcome = asyncio.run(strategy.process(batch))
    assert not outcome.dlq


def test_trace_shows_trace_and_span_scores_text_and_json(
    store: ClickHouseStore,
    endpoint: QueryEndpoint,
    chdb_dsn: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = load_settings(
        None,
        data_dir=str(tmp_path / "data"),
        writer={
            "clickhouse_dsn": chdb_dsn,
            "database": store.database,
            "query_port": endpoint.port,
            "object_store_url": str(tmp_path / "objects"),
        },
    )
    _write(store, settings, tmp_path)
    _write(store, settings, tmp_path)  # a replay: the same score ids, still one row each

    assert run_trace(settings, TRACE.hex(), as_json=True) == 0
    doc = json.loads(capsys.readouterr().out)
    by_name = {sc["name"]: sc for sc in doc["scores"]}
    assert len(doc["scores"]) == 7 == len(by_name)
    assert [sc["level"] for sc in doc["scores"]] == ["trace"] * 6 + ["span"]
    assert by_name["tool_result_valid"]["span_name"] == "execute_tool refund"
    latency = by_name["latency_ms"]
    assert latency["evaluator_kind"] == "heuristic" and latency["score_value"] == 2500.0
    assert latency["close_reason"] == "max_age" and latency["evaluator_version"] == "1"
    assert latency["span_name"] == "agent support" and latency["sampling_weight"] == 0.0
    judged = by_name["groundedness"]
    assert judged["evaluator_kind"] == "llm_judge" and judged["score_label"] == "fail"
    assert judged["sampling_weight"] == pytest.approx(20.0) and judged["inclusion_probability"] == 0.05
    assert judged["stratum"] == "bulk:support|gpt-4o|prod" and judged["evaluator_version"] == "2"
    assert by_name["tone"]["error_type"] == "timeout" and by_name["tone"]["score_label"] == ""
    assert by_name["judge_sampling"]["score_label"] == "sampled"
    assert judged["attributes"]["spanline.sampling.policy_version"] == "p1"

    assert run_trace(settings, TRACE.hex()) == 0
    text = capsys.readouterr().out
    trace_part, span_part = text.split("\nspan scores\n")
    assert "\ntrace scores\n" in trace_part
    lines = {line.split()[0]: line for line in trace_part.split("\ntrace scores\n")[1].splitlines()[2:]}
    assert list(lines) == ["cost_usd", "error", "latency_ms", "groundedness", "tone", "judge_sampling"]
    assert lines["latency_ms"].split()[:5] == ["latency_ms", "1", "heuristic", "2500", "max_age"]
    assert "0.0123" in lines["cost_usd"]
    assert "fail" in lines["groundedness"] and "20 (p=0.05)" in lines["groundedness"]
    assert "invents a refund" in lines["groundedness"]
    assert "error: timeout" in lines["tone"]
    span_rows = span_part.strip().splitlines()[2:]
    assert len(span_rows) == 1 and span_rows[0].startswith("execute_tool refund")
    assert "tool_result_valid" in span_rows[0] and "invalid" in span_rows[0]
