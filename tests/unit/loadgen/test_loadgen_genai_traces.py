from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from spanline.loadgen.genai_logs import build_log_requests, logs_for_traces
from spanline.loadgen.genai_traces import build_requests, build_trace_set, serialize_requests
from spanline.loadgen.pii import luhn_valid
from spanline.loadgen.request_pool import RequestPool

START = 1_760_000_000_000_000_000


def spans_of(request: ExportTraceServiceRequest) -> list[Span]:
    return [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def attrs(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        which = kv.value.WhichOneof("value")
        if which == "array_value":
            out[kv.key] = [v.string_value for v in kv.value.array_value.values]
        else:
            out[kv.key] = getattr(kv.value, which)
    return out


def by_trace(requests: list[ExportTraceServiceRequest]) -> dict[bytes, list[Span]]:
    traces: dict[bytes, list[Span]] = {}
    for r in requests:
        for s in spans_of(r):
            traces.setdefault(s.trace_id, []).append(s)
    return traces


@pytest.mark.parametrize(("total", "batch"), [(1000, 100), (257, 50), (7, 100), (1, 1), (99, 10)])
def test_span_counts_per_request(total: int, batch: int) -> None:
    requests = build_requests(total, batch, seed=1, start_time_ns=START)
    counts = [len(spans_of(r)) for r in requests]
    assert sum(counts) == total
    assert all(c == batch for c in counts[:-1])
    assert counts[-1] == (total % batch or batch)


def test_every_request_holds_whole_traces() -> None:
    requests = build_requests(2000, 100, seed=2, start_time_ns=START)
    seen: dict[bytes, int] = {}
    for i, r in enumerate(requests):
        for s in spans_of(r):
            assert seen.setdefault(s.trace_id, i) == i, "trace split across requests"


def test_trace_shapes_follow_genai_conventions() -> None:
    traces = by_trace(build_requests(3000, 100, seed=3, start_time_ns=START))
    operations: Counter[str] = Counter()
    for spans in traces.values():
        ops = [attrs(s)["gen_ai.operation.name"] for s in spans]
        operations.update(ops)
        if ops == ["chat"]:
            assert spans[0].parent_span_id == b""
            continue
        roots = [s for s in spans if s.parent_span_id == b""]
        assert len(roots) == 1
        root = roots[0]
        ra = attrs(root)
        assert ra["gen_ai.operation.name"] == "invoke_agent"
        assert root.name == f"invoke_agent {ra['gen_ai.agent.name']}"
        assert ra["gen_ai.agent.id"] and ra["gen_ai.conversation.id"].startswith("conv_")
        children = [s for s in spans if s is not root]
        assert all(c.parent_span_id == root.span_id for c in children)
        assert all(root.start_time_unix_nano <= c.start_time_unix_nano for c in children)
        assert all(c.end_time_unix_nano <= root.end_time_unix_nano for c in children)
        assert len({s.span_id for s in spans}) == len(spans)
        # chat, tool, chat, tool, ..., chat
        child_ops = [attrs(c)["gen_ai.operation.name"] for c in children]
        assert child_ops[::2] == ["chat"] * len(child_ops[::2])
        assert child_ops[1::2] == ["execute_tool"] * len(child_ops[1::2])
    assert operations["invoke_agent"] > 100 and operations["execute_tool"] > 100 and operations["chat"] > 100


def test_chat_and_tool_attributes() -> None:
    requests = build_requests(500, 100, seed=4, start_time_ns=START)
    providers = set()
    chat_payload_sizes = []
    for r in requests:
        for rs in r.resource_spans:
            resource = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
            assert resource["service.name"] and resource["telemetry.sdk.language"] == "python"
        for s in spans_of(r):
            a = attrs(s)
            if a["gen_ai.operation.name"] == "chat":
                assert s.kind == Span.SPAN_KIND_CLIENT
                providers.add(a["gen_ai.provider.name"])
                assert s.name == f"chat {a['gen_ai.request.model']}"
                inputs = json.loads(a["gen_ai.input.messages"])
                assert inputs[0]["role"] == "user" and inputs[0]["parts"][0]["type"] == "text"
                assert json.loads(a["gen_ai.system_instructions"])[0]["type"] == "text"
                if s.status.code == Status.STATUS_CODE_ERROR:
                    assert a["error.type"]
                    continue
                assert a["gen_ai.response.model"].startswith(a["gen_ai.request.model"].split("-latest")[0])
                assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
                assert 0 <= a["gen_ai.usage.cache_read.input_tokens"] <= a["gen_ai.usage.input_tokens"]
                outputs = json.loads(a["gen_ai.output.messages"])
                assert outputs[0]["role"] == "assistant"
                assert outputs[0]["finish_reason"] == a["gen_ai.response.finish_reasons"][0]
                assert {p["type"] for p in outputs[0]["parts"]} <= {"text", "tool_call"}
                chat_payload_sizes.append(len(a["gen_ai.input.messages"]) + len(a["gen_ai.output.messages"]))
            elif a["gen_ai.operation.name"] == "execute_tool":
                assert s.name == f"execute_tool {a['gen_ai.tool.name']}"
                assert a["gen_ai.tool.call.id"].startswith("call_")
                json.loads(a["gen_ai.tool.call.arguments"])
                if s.status.code != Status.STATUS_CODE_ERROR:
                    json.loads(a["gen_ai.tool.call.result"])
    assert providers == {"openai", "anthropic"}
    mean = sum(chat_payload_sizes) / len(chat_payload_sizes)
    assert 700 < mean < 3000, mean


def test_tool_call_ids_link_chat_output_to_tool_span() -> None:
    traces = by_trace(build_requests(400, 100, seed=5, start_time_ns=START))
    for spans in traces.values():
        calls = set()
        for s in spans:
            a = attrs(s)
            if a["gen_ai.operation.name"] == "chat" and "gen_ai.output.messages" in a:
                for part in json.loads(a["gen_ai.output.messages"])[0]["parts"]:
                    if part["type"] == "tool_call":
                        calls.add(part["id"])
        tools = {attrs(s)["gen_ai.tool.call.id"] for s in spans if s.name.startswith("execute_tool")}
        assert tools == calls


def test_deterministic_by_seed() -> None:
    a = serialize_requests(build_requests(600, 100, seed=7, start_time_ns=START))
    b = serialize_requests(build_requests(600, 100, seed=7, start_time_ns=START))
    c = serialize_requests(build_requests(600, 100, seed=8, start_time_ns=START))
    assert a == b
    assert a != c


def test_about_ten_percent_of_traces_fail() -> None:
    trace_set = build_trace_set(8_000, 100, seed=11, start_time_ns=START)
    traces = by_trace(trace_set.requests)
    failed = set()
    for trace_id, spans in traces.items():
        top = next(s for s in spans if s.parent_span_id == b"")
        if top.status.code == Status.STATUS_CODE_ERROR:
            assert attrs(top)["error.type"]
            failed.add(trace_id)
            errored_children = [
                s for s in spans if s is not top and s.status.code == Status.STATUS_CODE_ERROR
            ]
            assert len(errored_children) == (1 if len(spans) > 1 else 0)
    assert failed == trace_set.error_trace_ids
    rate = len(failed) / len(traces)
    assert 0.07 < rate < 0.13, rate


def test_planted_pii_is_in_the_payloads() -> None:
    trace_set = build_trace_set(1000, 100, seed=12, plant_pii=True, start_time_ns=START)
    kinds = Counter(p.kind for p in trace_set.planted)
    assert set(kinds) == {"email", "phone", "card", "api_key"}
    assert len(trace_set.planted) >= len(trace_set.trace_ids)
    by_id = {
        r_id: b"".join(s.SerializeToString() for s in spans)
        for r_id, spans in by_trace(trace_set.requests).items()
    }
    for p in trace_set.planted:
        assert p.value.encode() in by_id[p.trace_id], p
        if p.kind == "card":
            assert luhn_valid(p.value)
    clean = b"".join(serialize_requests(build_requests(1000, 100, seed=12, start_time_ns=START)))
    assert not any(
        p.value.encode() in clean for p in trace_set.planted if p.kind in ("email", "card", "api_key")
    )


@pytest.mark.parametrize("style", ["details", "per_message"])
def test_logs_match_chat_spans(style: str) -> None:
    traces, logs = build_log_requests(300, 100, seed=13, plant_pii=True, start_time_ns=START, style=style)  # type: ignore[arg-type]
    assert len(logs) == len(traces)
    chat_ids = {(s.trace_id, s.span_id) for r in traces for s in spans_of(r) if s.name.startswith("chat ")}
    records = [rec for r in logs for rl in r.resource_logs for sl in rl.scope_logs for rec in sl.log_records]
    assert {(r.trace_id, r.span_id) for r in records} == chat_ids
    if style == "details":
        assert len(records) == len(chat_ids)
        assert {r.event_name for r in records} == {"gen_ai.client.inference.operation.details"}
    else:
        names = Counter(
            kv.value.string_value for r in records for kv in r.attributes if kv.key == "event.name"
        )
        assert names["gen_ai.user.message"] == len(chat_ids)
        assert names["gen_ai.system.message"] == len(chat_ids)
        assert names["gen_ai.choice"] > 0 and names["gen_ai.tool.message"] > 0
    wire = b"".join(r.SerializeToString() for r in logs)
    assert b"@example" in wire


def test_logs_for_traces_keeps_resources() -> None:
    traces = build_requests(100, 100, seed=14, start_time_ns=START)
    (logs,) = logs_for_traces(traces)
    services = {
        kv.value.string_value
        for rl in logs.resource_logs
        for kv in rl.resource.attributes
        if kv.key == "service.name"
    }
    assert services <= {
        kv.value.string_value
        for rs in traces[0].resource_spans
        for kv in rs.resource.attributes
        if kv.key == "service.name"
    }


def test_request_pool_issues_fresh_intact_traces() -> None:
    pool = RequestPool(batch=50, pool_size=2, seed=15, start_time_ns=START)
    seen: set[bytes] = set()
    for _ in range(5):
        data, count = pool.next()
        request = ExportTraceServiceRequest.FromString(data)
        spans = spans_of(request)
        assert count == len(spans) == 50
        ids = {s.trace_id for s in spans}
        assert not ids & seen, "trace id reused"
        seen |= ids
        for spans_of_trace in by_trace([request]).values():
            span_ids = {s.span_id for s in spans_of_trace}
            assert all(s.parent_span_id in span_ids for s in spans_of_trace if s.parent_span_id)
    tail, count = pool.next(7)
    assert count == 7 == len(spans_of(ExportTraceServiceRequest.FromString(tail)))


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        build_requests(10, 0)
    with pytest.raises(ValueError):
        build_requests(-1, 10)
    assert build_requests(0, 10) == []
