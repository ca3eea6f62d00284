from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

from spanline.loadgen.otlp_values import key_value
from spanline.spans.object_store import LocalObjectStore, PayloadOffloader, parse_ref
from spanline.spans.pricing import PricingTable
from spanline.spans.rows import (
    SPAN_COLUMNS,
    AlertRows,
    AuditRows,
    LogRows,
    RowBuildError,
    ScoreRows,
    SpanRows,
    spans_rows,
)
from spanline.v1.spanline_pb2 import AlertEvent, AuditCount, Score

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
T0 = 1_763_000_000_000_000_000


def _set(attrs, key: str, value: object) -> None:  # type: ignore[no-untyped-def]
    attrs.append(key_value(key, value))


def make_traces(n: int = 2, *, attrs: dict[str, object] | None = None, trace_id: bytes = TRACE) -> TracesData:
    td = TracesData()
    rs = td.resource_spans.add()
    _set(rs.resource.attributes, "service.name", "checkout")
    _set(rs.resource.attributes, "deployment.environment", "prod")
    ss = rs.scope_spans.add()
    ss.scope.name = "opentelemetry.instrumentation.openai_v2"
    ss.scope.version = "2.4b0"
    for i in range(n):
        span = ss.spans.add()
        span.trace_id = trace_id
        span.span_id = (i + 1).to_bytes(8, "big")
        if i:
            span.parent_span_id = (1).to_bytes(8, "big")
        span.name = f"chat {i}"
        span.kind = Span.SPAN_KIND_CLIENT
        span.start_time_unix_nano = T0 + i * 1_000_000
        span.end_time_unix_nano = T0 + i * 1_000_000 + 250_000_000
        for key, value in (attrs or {}).items():
            _set(span.attributes, key, value)
    return td


GENAI = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 100,
    "gen_ai.response.finish_reasons": ["stop"],
    "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]',
    "temperature_like": 0.5,
    "flag": True,
}


@pytest.fixture(scope="module")
def pricing() -> PricingTable:
    return PricingTable.load()


def test_span_rows_match_schema_and_values(pricing: PricingTable) -> None:
    table = spans_rows(make_traces(2, attrs=GENAI), "proj-a", T0 + 5, pricing=pricing)
    assert table.schema.names == [name for name, _ in SPAN_COLUMNS]
    assert table.num_rows == 2
    row = table.to_pylist()[1]
    assert row["trace_id"] == TRACE.hex() and row["span_id"] == "0000000000000002"
    assert row["parent_span_id"] == "0000000000000001"
    assert (row["project_id"], row["service_name"], row["kind"], row["status_code"]) == (
        "proj-a",
        "checkout",
        "CLIENT",
        "UNSET",
    )
    assert row["duration_ns"] == 250_000_000
    assert row["start_time"].value == T0 + 1_000_000  # pandas-free: pyarrow gives Timestamp-like
    assert (row["provider"], row["request_model"], row["response_model"]) == (
        "openai",
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
    )
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (1000, 100, 1100)
    assert row["cost_usd"] == pytest.approx((1000 * 0.15 + 100 * 0.6) / 1e6)
    assert row["pricing_version"] == "v1"
    assert row["finish_reasons"] == ["stop"]
    assert json.loads(row["input_messages"])[0]["role"] == "user"
    assert row["input_messages_bytes"] == len(GENAI["gen_ai.input.messages"])  # type: ignore[arg-type]
    attrs = dict(row["attributes"])
    assert "gen_ai.input.messages" not in attrs
    assert attrs["gen_ai.usage.input_tokens"] == "1000"
    assert attrs["temperature_like"] == "0.5" and attrs["flag"] == "true"
    assert attrs["gen_ai.response.finish_reasons"] == '["stop"]'
    assert dict(row["resource_attributes"])["deployment.environment"] == "prod"
    assert row["ingested_at"].value == T0 + 5


def test_bad_message_raises_and_leaves_batch_intact(pricing: PricingTable) -> None:
    buf = SpanRows(pricing)
    assert buf.add_bytes(make_traces(3).SerializeToString(), "p", T0) == 3
    with pytest.raises(RowBuildError) as err:
        buf.add_bytes(b"\xff\xff\xff not protobuf", "p", T0)
    assert err.value.table == "spans"
    bad = make_traces(2)
    bad.resource_spans[0].scope_spans[0].spans[1].trace_id = b"\x01\x02"
    with pytest.raises(RowBuildError, match="trace_id has 2 bytes"):
        buf.add(bad, "p", T0)
    no_start = make_traces(1)
    no_start.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano = 0
    with pytest.raises(RowBuildError, match="start time"):
        buf.add(no_start, "p", T0)
    with pytest.raises(RowBuildError, match="project"):
        buf.add(make_traces(1), "", T0)
    assert len(buf) == 3
    table = buf.take()
    assert table.num_rows == 3 and len(buf) == 0 and buf.approx_bytes == 0


def test_warm_up_leaves_no_row_behind(pricing: PricingTable) -> None:
    buf = SpanRows(pricing)
    buf.warm_up()
    assert len(buf) == 0 and buf.approx_bytes == 0
    buf.add(make_traces(2), "p", T0)
    assert buf.take().column("project_id").to_pylist() == ["p", "p"]


def test_empty_buffer_gives_empty_table_with_schema(pricing: PricingTable) -> None:
    table = SpanRows(pricing).take()
    assert table.num_rows == 0 and table.schema.names == [n for n, _ in SPAN_COLUMNS]


def test_large_payload_is_claim_checked(tmp_path: Path, pricing: PricingTable) -> None:
    big = "é" * 200_000  # 400 kB of UTF-8, over the 256 KiB default
    offloader = PayloadOffloader(LocalObjectStore(tmp_path), 256 * 1024)
    table = spans_rows(
        make_traces(1, attrs={"gen_ai.output.messages": big, "gen_ai.operation.name": "chat"}),
        "p",
        T0,
        pricing=pricing,
        offloader=offloader,
    )
    row = table.to_pylist()[0]
    ref = parse_ref(row["output_messages"])
    assert ref is not None and ref.length == len(big.encode("utf-8")) == row["output_messages_bytes"]
    assert ref.sha256 == hashlib.sha256(big.encode("utf-8")).hexdigest()
    assert offloader.inline(row["output_messages"]) == big
    # same content twice: one object, same reference
    again = spans_rows(
        make_traces(1, attrs={"gen_ai.output.messages": big, "gen_ai.operation.name": "chat"}),
        "p",
        T0,
        pricing=pricing,
        offloader=offloader,
    )
    assert again.to_pylist()[0]["output_messages"] == row["output_messages"]
    assert len(list((tmp_path / "sha256").rglob("*"))) == 2  # one dir + one object


def test_upstream_reference_kept_with_its_length(pricing: PricingTable, tmp_path: Path) -> None:
    ref = "spanline-ref:sha256:" + "ab" * 32 + ":5000000"
    offloader = PayloadOffloader(LocalObjectStore(tmp_path), 1024)
    row = spans_rows(
        make_traces(1, attrs={"gen_ai.input.messages": ref, "gen_ai.operation.name": "chat"}),
        "p",
        T0,
        pricing=pricing,
        offloader=offloader,
    ).to_pylist()[0]
    assert row["input_messages"] == ref and row["input_messages_bytes"] == 5_000_000


def test_events_links_and_content_events(pricing: PricingTable) -> None:
    td = make_traces(1, attrs={"gen_ai.operation.name": "chat"})
    span = td.resource_spans[0].scope_spans[0].spans[0]
    ev = span.events.add(time_unix_nano=T0 + 1, name="gen_ai.content.prompt")
    _set(ev.attributes, "gen_ai.prompt", '[{"role":"user","content":"q"}]')
    ev2 = span.events.add(time_unix_nano=T0 + 2, name="exception")
    _set(ev2.attributes, "exception.type", "ValueError")
    link = span.links.add(trace_id=b"\x11" * 16, span_id=b"\x22" * 8)
    _set(link.attributes, "k", "v")
    row = spans_rows(td, "p", T0, pricing=pricing).to_pylist()[0]
    assert row["input_messages"] == '[{"role":"user","content":"q"}]'
    events = json.loads(row["events"])
    assert [e["name"] for e in events] == ["gen_ai.content.prompt", "exception"]
    assert events[0]["attributes"] == {} and events[1]["attributes"] == {"exception.type": "ValueError"}
    assert json.loads(row["links"]) == [
        {"trace_id": "11" * 16, "span_id": "22" * 8, "trace_state": "", "attributes": {"k": "v"}}
    ]


def test_log_rows_move_event_content_to_body() -> None:
    logs = LogsData()
    rl = logs.resource_logs.add()
    _set(rl.resource.attributes, "service.name", "svc")
    sl = rl.scope_logs.add()
    rec = sl.log_records.add(time_unix_nano=T0, trace_id=TRACE, span_id=b"\x01" * 8, severity_number=9)
    rec.event_name = "gen_ai.client.inference.operation.details"
    _set(rec.attributes, "gen_ai.input.messages", '[{"role":"user"}]')
    _set(rec.attributes, "gen_ai.operation.name", "chat")
    plain = sl.log_records.add(observed_time_unix_nano=T0 + 7)
    plain.body.string_value = "hello"
    buf = LogRows()
    buf.add_bytes(logs.SerializeToString(), "p", T0 + 9)
    rows = buf.take().to_pylist()
    assert rows[0]["event_name"] == "gen_ai.client.inference.operation.details"
    assert json.loads(rows[0]["body"]) == {"gen_ai.input.messages": '[{"role":"user"}]'}
    assert dict(rows[0]["attributes"]) == {"gen_ai.operation.name": "chat"}
    assert rows[0]["trace_id"] == TRACE.hex() and rows[0]["service_name"] == "svc"
    assert rows[1]["body"] == "hello" and rows[1]["time"].value == T0 + 7 and rows[1]["trace_id"] == ""
    assert rows[0]["record_id"] != rows[1]["record_id"]
    # identical bytes -> identical identity (replays collapse)
    again = LogRows()
    again.add(logs, "p", T0 + 100)
    assert [r["record_id"] for r in again.take().to_pylist()] == [r["record_id"] for r in rows]


def test_score_alert_audit_rows() -> None:
    scores = ScoreRows()
    scores.add_bytes(
        Score(
            score_id="s1",
            trace_id=TRACE,
            name="relevance",
            score_value=0.5,
            time_unix_nano=T0,
            attributes={"b": "2", "a": "1"},
        ).SerializeToString(),
        "from-header",
        T0 + 1,
    )
    row = scores.take().to_pylist()[0]
    assert (row["project_id"], row["trace_id"], row["span_id"], row["name"]) == (
        "from-header",
        TRACE.hex(),
        "",
        "relevance",
    )
    assert row["attributes"] == [("a", "1"), ("b", "2")]
    with pytest.raises(RowBuildError, match="score_id"):
        scores.add(Score(trace_id=TRACE), "p", T0)
    with pytest.raises(RowBuildError):
        scores.add_bytes(b"\x0a\xff", "p", T0)

    alerts = AlertRows()
    alerts.add(
        AlertEvent(fingerprint="fp", rule="cost", project_id="p2", state=AlertEvent.FIRING, value=3.0),
        "p",
        T0,
    )
    arow = alerts.take().to_pylist()[0]
    assert (arow["project_id"], arow["state"], arow["time"].value) == ("p2", "FIRING", T0)

    audit = AuditRows()
    count = AuditCount(
        project_id="p",
        detector="email",
        action="mask",
        count=4,
        window_start_unix_nano=T0,
        window_end_unix_nano=T0 + 60,
    )
    audit.add_bytes(count.SerializeToString(), "p", T0, message_id="spanline.audit/0/17")
    urow = audit.take().to_pylist()[0]
    assert (urow["detector"], urow["count"], urow["message_id"]) == ("email", 4, "spanline.audit/0/17")


def test_arrow_types_fit_clickhouse_columns(pricing: PricingTable) -> None:
    table = spans_rows(make_traces(1, attrs=GENAI), "p", T0, pricing=pricing)
    assert table.schema.field("start_time").type == pa.timestamp("ns", tz="UTC")
    assert table.schema.field("attributes").type == pa.map_(pa.string(), pa.string())
    assert table.schema.field("input_tokens").type == pa.uint64()


PAST_2262 = 1 << 63  # fixed64 on the wire; DateTime64(9) and timestamp[ns] end one below


@pytest.mark.parametrize("builder", ["compiled", "python"])
@pytest.mark.parametrize(("start", "end"), [(PAST_2262, PAST_2262 + 5), (PAST_2262, 5), (10, PAST_2262)])
def test_span_times_past_2262_reject_their_message_not_the_batch(builder: str, start: int, end: int) -> None:
    buf = SpanRows(PricingTable.load(), builder=builder)

    def message(start: int, end: int) -> bytes:
        td = TracesData()
        span = (
            td.resource_spans.add()
            .scope_spans.add()
            .spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="s")
        )
        span.start_time_unix_nano, span.end_time_unix_nano = start, end
        return td.SerializeToString()

    buf.add_bytes(message(10, 20), "p", 1)
    with pytest.raises(RowBuildError, match=r"DateTime64\(9\) range"):
        buf.add_bytes(message(start, end), "p", 1)
    assert buf.take().num_rows == 1  # the batch still converts


def test_times_past_2262_reject_their_message_in_every_table() -> None:
    logs = LogsData()
    logs.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=PAST_2262)
    cases = [
        (LogRows(), logs.SerializeToString()),
        (
            ScoreRows(),
            Score(score_id="s", trace_id=b"\x01" * 16, time_unix_nano=PAST_2262).SerializeToString(),
        ),
        (AlertRows(), AlertEvent(fingerprint="f", time_unix_nano=PAST_2262).SerializeToString()),
        (AuditRows(), AuditCount(detector="d", window_end_unix_nano=PAST_2262).SerializeToString()),
    ]
    for buf, value in cases:
        with pytest.raises(RowBuildError, match=r"DateTime64\(9\) range"):
            buf.add_bytes(value, "p", 1)
        assert len(buf) == 0 and buf.take().num_rows == 0, buf.table


def test_each_rejected_message_is_counted_once_per_table() -> None:
    from spanline.spans.metrics import ROWS_REJECTED

    def count(table: str) -> float:
        return float(ROWS_REJECTED.labels(table=table)._value.get())

    garbage = b"\x0a\xff\xff"
    for buf in (
        SpanRows(PricingTable.load()),
        SpanRows(PricingTable.load(), builder="python"),
        LogRows(),
        ScoreRows(),
    ):
        before = count(buf.table)
        with pytest.raises(RowBuildError):
            buf.add_bytes(garbage, "p", 1)
        assert count(buf.table) == before + 1, buf.table
    # a value that fails inside row building (not parsing) is counted and wrapped alike
    before = count("scores")
    with pytest.raises(RowBuildError, match="score_id is empty"):
        ScoreRows().add_bytes(Score(trace_id=b"\x01" * 16).SerializeToString(), "p", 1)
    assert count("scores") == before + 1


def test_score_bytes_and_score_messages_make_the_same_rows() -> None:
    """add_bytes has a fast path of its own; it must build exactly what add() builds."""
    messages = [
        Score(
            score_id=f"s{i}",
            project_id="own" if i % 2 else "",
            trace_id=bytes([i + 1]) * 16,
            span_id=b"\x02" * 8 if i % 3 else b"",
            name="latency_ms",
            score_value=i * 1.5,
            evaluator_kind="heuristic",
            sampling_weight=2.0,
            time_unix_nano=0 if i == 4 else T0 + i,
            attributes={"b": "2", "a": str(i)} if i % 2 else {},
        )
        for i in range(6)
    ]
    by_bytes, by_message = ScoreRows(), ScoreRows()
    for m in messages:
        assert by_bytes.add_bytes(m.SerializeToString(), "p", T0) == 1
        by_message.add(m, "p", T0)
    assert by_bytes.approx_bytes == sum(m.ByteSize() for m in messages)
    assert by_bytes.take().to_pylist() == by_message.take().to_pylist()


def test_a_score_set_makes_the_rows_of_its_scores_all_or_none() -> None:
    """A trace's ScoreSet (the scorer's record) gives the same rows as its scores one by one;
    one score that cannot become a row rejects the record whole, counted once."""
    from spanline.spans.metrics import ROWS_REJECTED
    from spanline.spans.score_records import pack_scores

    messages = [
        Score(score_id=f"s{i}", trace_id=b"\x07" * 16, name=f"n{i}", score_value=float(i), time_unix_nano=T0)
        for i in range(9)
    ]
    packed, single = ScoreRows(), ScoreRows()
    assert packed.add_bytes(pack_scores([m.SerializeToString() for m in messages]), "p", T0) == 9
    for m in messages:
        single.add_bytes(m.SerializeToString(), "p", T0)
    assert packed.take().to_pylist() == single.take().to_pylist()

    rejected = ROWS_REJECTED.labels(table="scores")
    before = rejected._value.get()
    broken = [*messages[:4], Score(trace_id=b"\x07" * 16), *messages[4:]]  # no score id
    with pytest.raises(RowBuildError, match="score_id is empty"):
        packed.add_bytes(pack_scores([m.SerializeToString() for m in broken]), "p", T0)
    with pytest.raises(RowBuildError, match="ScoreSet"):
        packed.add_bytes(pack_scores([b"\x0a\xff\xff"]), "p", T0)
    assert rejected._value.get() == before + 2
    assert len(packed) == 0
