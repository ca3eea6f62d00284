"""Each deterministic scorer on traces read through the span model (OTLP bytes -> facts on
arrival -> heuristics at close), through the scorer's own strategy."""

from __future__ import annotations

import asyncio
import os

import pytest

from spanline.scorer.service import ScorerStrategy
from spanline.settings import load_settings
from spanline.spans.score_records import unpack_scores
from spanline.v1.spanline_pb2 import Score
from tests.support.scorer_traces import chat_attrs, message, span


def _score(spans_of: list[object], tid: bytes, **settings: object) -> dict[str, Score]:
    strategy = ScorerStrategy(load_settings(None, topics={"prefix": "t"}, scorer={"heuristics": settings}))
    out = asyncio.run(strategy.process([message(tid, spans_of)]))  # type: ignore[arg-type]
    assert not out.dlq and not out.records
    closed = strategy.windows.close_all("complete")
    records = strategy._score(closed).records
    assert all(r.key == tid for r in records)
    scores = [s for r in records for s in unpack_scores(r.value)]
    return {s.name: s for s in scores}


def _trace(*, root_attrs: dict[str, str | int] | None = None, **chat: object) -> tuple[list[object], bytes]:
    tid = os.urandom(16)
    root = span(tid, name="agent.run", duration_ms=1500, attrs=root_attrs)
    kid = span(tid, parent=root.span_id, attrs=chat_attrs(**chat), error=False)  # type: ignore[arg-type]
    return [kid, root], tid


def test_trace_facts() -> None:
    tid = os.urandom(16)
    root = span(tid, name="agent.run", duration_ms=1500)
    llm = span(
        tid,
        parent=root.span_id,
        attrs={**chat_attrs(tokens=(1000, 200)), "gen_ai.response.time_to_first_chunk": 0.25},
    )
    tool_ok = span(
        tid,
        parent=root.span_id,
        name="execute_tool search",
        attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
    )
    tool_bad = span(
        tid,
        parent=root.span_id,
        name="execute_tool pay",
        error=True,
        attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "pay"},
    )
    got = _score([llm, tool_ok, tool_bad, root], tid, latency_ms_threshold=1000)
    assert got["error"].score_value == 1.0 and got["error"].score_label == "fail"
    assert got["latency_ms"].score_value == pytest.approx(1500.0) and got["latency_ms"].score_label == "slow"
    assert got["input_tokens"].score_value == 1000 and got["output_tokens"].score_value == 200
    assert got["cost_usd"].score_value > 0  # gpt-4o-mini is in the pricing table
    assert got["tool_errors"].score_value == 1.0
    assert got["ttft_ms"].score_value == pytest.approx(250.0)
    for s in got.values():
        assert s.evaluator_kind == "heuristic"
        assert s.attributes["spanline.evaluation.version"] == "1"
        assert s.attributes["spanline.trace.completion_reason"] == "complete"
        assert s.span_id == root.span_id


def test_output_heuristics() -> None:
    spans, tid = _trace(output="   ")
    got = _score(spans, tid)
    assert got["empty_output"].score_value == 1.0
    spans, tid = _trace(output="I'm sorry, but I can't help with that.")
    got = _score(spans, tid)
    assert got["refusal"].score_value == 1.0 and got["empty_output"].score_value == 0.0
    assert _score(spans, tid, refusal_phrases=["nothing matches"])["refusal"].score_value == 0.0
    tid = os.urandom(16)
    root = span(tid, name="agent.run")
    cut = span(
        tid,
        parent=root.span_id,
        attrs={
            **chat_attrs(output='{"a": 1, "b": '),
            "gen_ai.response.finish_reasons": "length",
            "gen_ai.output.type": "json",
        },
    )
    got = _score([cut, root], tid)
    assert got["truncated"].score_value == 1.0
    assert got["invalid_json"].score_value == 1.0
    spans, tid = _trace(output="fine")
    got = _score(spans, tid)
    assert "truncated" not in got  # no finish reason recorded: not applicable
    assert "invalid_json" not in got  # no JSON asked for: not applicable, not a silent 0


@pytest.mark.parametrize(
    ("attrs", "value"),
    [
        ({"user.feedback.score": 1}, 1.0),  # spanline's own convention
        ({"user.feedback.label": "thumbs_down"}, 0.0),
        ({"langfuse.score.value": "0.0"}, 0.0),  # Langfuse-style
        ({"feedback.label": "positive"}, 1.0),  # OpenInference/Phoenix-style annotation
        ({"user_feedback": 5}, 1.0),  # a 1-5 rating
    ],
)
def test_user_feedback_conventions(attrs: dict[str, str | int], value: float) -> None:
    spans, tid = _trace(root_attrs=attrs)
    got = _score(spans, tid)
    assert got["user_feedback"].score_value == value


def test_no_feedback_no_score_and_disabled() -> None:
    spans, tid = _trace()
    got = _score(spans, tid, disabled=["error", "latency_ms"])
    assert "user_feedback" not in got
    assert "error" not in got and "latency_ms" not in got
    assert "input_tokens" in got
