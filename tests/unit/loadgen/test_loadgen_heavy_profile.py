"""The heavy profile is the load of issue 14: 5-span agent runs (invoke_agent root, three
chat, one execute_tool), both OTel GenAI and OpenInference attributes with message content
on every span, ~2.5 KB of protobuf a span, ~10% failed traces."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Status, TracesData

from spanline.loadgen.genai_traces import build_requests, build_trace_set
from spanline.loadgen.request_pool import RequestPool
from spanline.loadgen.runner import LoadgenConfig
from spanline.spans.rows import spans_rows
from tests.unit.loadgen.test_loadgen_genai_traces import attrs, by_trace, spans_of

START = 1_760_000_000_000_000_000
# issue 14: "about 2.5 KB of protobuf per span"
SPAN_BYTES = (2_250, 2_750)


@pytest.fixture(scope="module")
def requests() -> list[ExportTraceServiceRequest]:
    return build_requests(10_000, 100, seed=14, start_time_ns=START, profile="heavy")


def test_every_trace_is_root_three_chats_one_tool(requests: list[ExportTraceServiceRequest]) -> None:
    traces = by_trace(requests)
    assert len(traces) == 2_000
    for spans in traces.values():
        ops = Counter(attrs(s)["gen_ai.operation.name"] for s in spans)
        assert ops == {"chat": 3, "execute_tool": 1, "invoke_agent": 1}
        root = spans[-1]
        assert attrs(root)["gen_ai.operation.name"] == "invoke_agent" and root.parent_span_id == b""
        assert all(s.parent_span_id == root.span_id for s in spans[:-1])
        kinds = [attrs(s)["openinference.span.kind"] for s in spans]
        assert kinds == ["LLM", "TOOL", "LLM", "LLM", "AGENT"]


def test_every_span_carries_both_conventions_with_content(requests: list[ExportTraceServiceRequest]) -> None:
    for span in (s for r in requests for s in spans_of(r)):
        a = attrs(span)
        assert a["gen_ai.operation.name"] and a["openinference.span.kind"]
        assert a["input.value"], span.name
        failed = span.status.code == Status.STATUS_CODE_ERROR
        op = a["gen_ai.operation.name"]
        if op == "chat":
            messages = json.loads(a["gen_ai.input.messages"])
            assert messages[0]["parts"][0]["content"]
            assert a["llm.input_messages.0.message.role"] == "system"
            assert a["llm.input_messages.1.message.content"] == messages[0]["parts"][0]["content"]
            assert (
                json.loads(a["input.value"])["messages"][1]["content"] == messages[0]["parts"][0]["content"]
            )
            if not failed:
                assert json.loads(a["gen_ai.output.messages"])[0]["role"] == "assistant"
                assert a["llm.output_messages.0.message.role"] == "assistant"
                assert a["llm.token_count.prompt"] == a["gen_ai.usage.input_tokens"]
                assert a["llm.model_name"] == a["gen_ai.response.model"]
                assert json.loads(a["output.value"])["choices"]
        elif op == "execute_tool":
            assert a["input.value"] == a["gen_ai.tool.call.arguments"] == a["tool_call.function.arguments"]
            assert a["tool.name"] == a["gen_ai.tool.name"]
            if not failed:
                assert a["output.value"] == a["gen_ai.tool.call.result"]
        else:
            prompt = json.loads(a["gen_ai.input.messages"])[0]["parts"][0]["content"]
            assert a["input.value"] == prompt.strip() and prompt.startswith("Hello, I need help with")
            assert a["session.id"] == a["gen_ai.conversation.id"]


def test_spans_average_about_2_5_kb(requests: list[ExportTraceServiceRequest]) -> None:
    spans = sum(len(spans_of(r)) for r in requests)
    per_span = sum(len(r.SerializeToString()) for r in requests) / spans
    assert SPAN_BYTES[0] <= per_span <= SPAN_BYTES[1], per_span
    # every span is big, not a few huge ones: the smallest kind is the tool span
    sizes: dict[str, list[int]] = {}
    for s in (s for r in requests for s in spans_of(r)):
        sizes.setdefault(s.name.split()[0], []).append(s.ByteSize())
    assert min(sum(v) / len(v) for v in sizes.values()) > 700, {k: sum(v) / len(v) for k, v in sizes.items()}


def test_one_trace_in_ten_fails_and_its_root_says_so() -> None:
    ts = build_trace_set(20_000, 100, seed=3, start_time_ns=START, profile="heavy")
    share = len(ts.error_trace_ids) / len(ts.trace_ids)
    assert 0.08 <= share <= 0.12, share
    for r in ts.requests:
        for span in spans_of(r):
            if span.parent_span_id == b"":
                failed = span.status.code == Status.STATUS_CODE_ERROR
                assert failed == (span.trace_id in ts.error_trace_ids)
                assert ("error.type" in attrs(span)) == failed


def test_span_model_reads_the_otel_content(requests: list[ExportTraceServiceRequest]) -> None:
    table = spans_rows(TracesData(resource_spans=requests[0].resource_spans), "p", 0).to_pylist()
    assert len(table) == 100
    for row in table:
        op = row["operation"]
        if op == "chat" and row["status_code"] != "ERROR":
            assert row["input_messages"] and row["output_messages"] and row["input_tokens"] > 0
        if op == "execute_tool":
            assert row["tool_arguments"]


def test_requests_of_a_length_not_divisible_by_five_keep_whole_traces() -> None:
    ts = build_trace_set(103, 51, seed=4, start_time_ns=START, profile="heavy")
    counts = [len(spans_of(r)) for r in ts.requests]
    assert counts == [51, 51, 1]
    traces = by_trace(ts.requests)
    shapes = Counter(len(spans) for spans in traces.values())
    assert shapes[5] == 20 and sum(n * k for n, k in shapes.items()) == 103


def test_pool_and_config_take_the_profile() -> None:
    pool = RequestPool(100, pool_size=2, seed=1, profile="heavy")
    body, spans = pool.next()
    request = ExportTraceServiceRequest.FromString(body)
    assert spans == 100 and SPAN_BYTES[0] * 100 <= len(body) <= SPAN_BYTES[1] * 100
    assert all("openinference.span.kind" in attrs(s) for s in spans_of(request))
    with pytest.raises(ValueError, match="unknown profile"):
        LoadgenConfig(target="127.0.0.1:1", total_spans=10, profile="huge")
    with pytest.raises(ValueError, match="unknown profile"):
        build_requests(10, 10, profile="huge")
