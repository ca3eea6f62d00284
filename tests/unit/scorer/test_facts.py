"""What a window holds per span (facts read on arrival), and the batched score encoding."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, LogsData, ResourceLogs, ScopeLogs

from spanline.core.kafka import InMessage
from spanline.core.kafka.records import SIGNAL_LOGS, standard_headers
from spanline.scorer.config import ScorerSettings
from spanline.scorer.facts import JSON_INVALID, JSON_NOT_CHECKED, JSON_VALID, FactsReader
from spanline.scorer.scores import KIND_HEURISTIC, new_score, trace_score_values
from spanline.scorer.service import ScorerStrategy
from spanline.settings import load_settings
from spanline.spans.pricing import PricingTable
from spanline.spans.score_records import unpack_scores
from spanline.v1.spanline_pb2 import Score
from tests.support.scorer_traces import chat_attrs, message, span, trace_spans


def _strategy(**scorer: object) -> ScorerStrategy:
    return ScorerStrategy(load_settings(None, topics={"prefix": "t"}, scorer=scorer))


def test_score_values_parse_as_new_score() -> None:
    tid, sid = os.urandom(16), os.urandom(8)
    attrs = {"spanline.trace.completion_reason": "evicted", "spanline.trace.complete": "false"}
    results = [
        ("error", "1", 0.0, "pass", ""),
        ("latency_ms", "2", 1234.5, "ok", ""),
        ("refusal", "1", 1.0, "fail", "é" * 300),  # multi-byte, length over one varint byte
        ("ttft_ms", "1", -0.0, "", ""),
    ]
    values = trace_score_values(
        project_id="shop",
        trace_id=tid,
        span_id=sid,
        kind=KIND_HEURISTIC,
        time_unix_nano=42,
        attributes=attrs,
        results=results,
    )
    for value, (name, version, v, label, explanation) in zip(values, results, strict=True):
        expected = new_score(
            project_id="shop",
            trace_id=tid,
            span_id=sid,
            name=name,
            version=version,
            kind=KIND_HEURISTIC,
            value=v,
            label=label,
            explanation=explanation,
            time_unix_nano=42,
            attributes=attrs,
        )
        assert Score.FromString(value) == expected


def test_facts_read_only_what_the_heuristics_need() -> None:
    tid = os.urandom(16)
    root = span(tid, name="agent.run", attrs={"deployment.environment.name": "prod"})
    start = time.time_ns() - 5_000_000_000
    early = span(tid, parent=root.span_id, attrs=chat_attrs(output="   "), start_ns=start)
    late = span(
        tid,
        parent=root.span_id,
        attrs={**chat_attrs(output="not json"), "gen_ai.output.type": "json", "user.feedback.score": 0},
        start_ns=start + 1_000_000_000,
    )
    reader = FactsReader(PricingTable.load(None), "auto", ScorerSettings().heuristics_for)
    assert reader.add(message(tid, [early, late, root]).value, "shop", 1) == 3
    hexes, facts = reader.take()
    assert hexes == [tid.hex()] * 3
    by_id = {f.span_id: f for f in facts}
    f_early, f_late, f_root = by_id[early.span_id], by_id[late.span_id], by_id[root.span_id]
    assert f_root.is_root and not f_early.is_root and f_root.name == "agent.run"
    assert f_root.duration_ns == root.end_time_unix_nano - root.start_time_unix_nano
    assert f_early.duration_ns == 0  # only a root's duration is kept
    assert f_root.environment == "prod"
    assert f_late.model == "gpt-4o-mini" and f_late.input_tokens == 40 and f_late.cost_usd
    # of the calls of one message, only the one ending last can end the trace: its answer is read
    assert f_early.output_empty is None
    assert f_late.output_empty is False and f_late.output_refusal is False
    # answers to a JSON request are all checked
    assert f_late.json_answer == JSON_INVALID and f_early.json_answer == JSON_NOT_CHECKED
    assert f_late.feedback == ((late.end_time_unix_nano, 0.0),)
    assert reader.take() == ([], [])


def test_json_answer_and_event_feedback() -> None:
    tid = os.urandom(16)
    s = span(tid, attrs={**chat_attrs(output='{"a": 1}'), "gen_ai.output.type": "json"})
    ev = s.events.add(name="user.feedback", time_unix_nano=s.end_time_unix_nano + 7)
    ev.attributes.append(KeyValue(key="label", value=AnyValue(string_value="thumbs_up")))
    reader = FactsReader(PricingTable.load(None), "auto", ScorerSettings().heuristics_for)
    reader.add(message(tid, [s]).value, "shop", 1)
    [f] = reader.take()[1]
    assert f.json_answer == JSON_VALID
    assert f.feedback == ((s.end_time_unix_nano + 7, 1.0),)


def test_judge_off_holds_facts_not_messages_and_counts_them() -> None:
    """Without the judge a 20 MB trace holds only its span facts; the byte bounds count what
    is held, so a trace of very many spans still closes as oversized."""
    st = _strategy(max_trace_bytes=64 * 1024)
    tid = os.urandom(16)
    big = "y" * (1024 * 1024)
    for i in range(20):
        s = span(tid, parent=os.urandom(8), attrs=chat_attrs(output=big))
        asyncio.run(st.process([message(tid, [s], offset=i)]))
    [trace] = st.windows._open.values()
    assert len(trace.spans) == 20 and not trace.span_messages
    assert st.windows.open_bytes < 16 * 1024
    many = os.urandom(16)
    spans = [span(many, parent=os.urandom(8)) for _ in range(400)]
    out = asyncio.run(st.process([message(many, spans, offset=100)]))
    assert out.records  # closed at once (oversized) and scored
    assert all(
        s.attributes["spanline.trace.completion_reason"] == "oversized"
        for r in out.records
        for s in unpack_scores(r.value)
    )


def test_judge_on_keeps_messages() -> None:
    class Judge:
        async def evaluate(self, trace: object) -> list[object]:
            return []

        async def close(self) -> None:
            return None

    st = ScorerStrategy(load_settings(None, topics={"prefix": "t"}), judge=Judge())  # type: ignore[arg-type]
    tid = os.urandom(16)
    msg = message(tid, trace_spans(tid, 1))
    asyncio.run(st.process([msg]))
    [trace] = st.windows._open.values()
    assert trace.span_messages == [msg] and st.windows.open_bytes > len(msg.value)


def _log_message(tid: bytes, offset: int, **attrs: str | int) -> InMessage:
    rec = LogRecord(trace_id=tid, time_unix_nano=time.time_ns(), event_name="user.feedback")
    for k, v in attrs.items():
        value = AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=v)
        rec.attributes.append(KeyValue(key=k, value=value))
    data = LogsData(resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[rec])])])
    headers = standard_headers("shop", time.time_ns(), SIGNAL_LOGS)
    return InMessage("t.redacted", 0, offset, tid, data.SerializeToString(), list(headers))


def test_feedback_of_a_log_event_scores_the_trace() -> None:
    st = _strategy()
    tid = os.urandom(16)
    asyncio.run(st.process([message(tid, trace_spans(tid, 1), offset=0), _log_message(tid, 1, score=1)]))
    records = st._score(st.windows.close_all("complete")).records
    scores = {s.name: s for r in records for s in unpack_scores(r.value)}
    assert scores["user_feedback"].score_value == 1.0


@pytest.mark.parametrize(
    ("value", "reason"),
    [(b"\xff\xff garbage", "decode_error"), (None, "parse_error")],
)
def test_refused_on_arrival_goes_to_dlq_and_the_trace_goes_on(value: bytes | None, reason: str) -> None:
    st = _strategy()
    tid = os.urandom(16)
    good = message(tid, trace_spans(tid, 1), offset=0)
    if value is None:  # parses, but the span model refuses an all-zero trace id
        zero = bytes(16)
        bad = message(zero, [span(zero)], offset=1)
    else:
        bad = InMessage(good.topic, 0, 1, tid, value, list(good.headers))
    out = asyncio.run(st.process([good, bad]))
    assert [(e.message.offset, e.reason) for e in out.dlq] == [(1, reason)]
    assert len(st.windows) == 1


def test_score_records_of_a_closed_trace_are_keyed_and_complete() -> None:
    st = _strategy()
    tid = os.urandom(16)
    asyncio.run(st.process([message(tid, trace_spans(tid, 2))]))
    records = st._score(st.windows.close_all("complete")).records
    assert len(records) == 1  # one record for the trace's scores
    scores = unpack_scores(records[0].value)
    assert {r.key for r in records} == {tid}
    assert len({s.score_id for s in scores}) == len(scores) >= 8
    assert all(s.span_id == scores[0].span_id and s.evaluator_kind == "heuristic" for s in scores)


def test_a_batch_is_read_in_chunks_with_every_span_in_its_window(monkeypatch: pytest.MonkeyPatch) -> None:
    import spanline.scorer.service as service

    monkeypatch.setattr(service, "READ_CHUNK_ROWS", 4)
    st = _strategy()
    ids = [os.urandom(16) for _ in range(7)]
    batch = [message(tid, trace_spans(tid, i % 3), offset=i) for i, tid in enumerate(ids)]
    asyncio.run(st.process(batch))
    held = {t.trace_id: [f.span_id for f in t.spans] for t in st.windows._open.values()}
    assert held == {tid: [s.span_id for s in trace_spans_of(m)] for tid, m in zip(ids, batch, strict=True)}


def trace_spans_of(msg: InMessage) -> list[object]:
    from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

    return [
        s for rs in TracesData.FromString(msg.value).resource_spans for ss in rs.scope_spans for s in ss.spans
    ]
