"""Loadgen-like traces as ``spanline.redacted`` messages, for the scorer's tests.

A trace is an agent root with LLM chat children; each span is its own ``TracesData``
message (as when a BatchSpanProcessor exports the children before the root), so a
trace reaches the scorer across many messages and batches.
"""

from __future__ import annotations

import os
import time

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status, TracesData

from spanline.core.kafka import InMessage, OutRecord
from spanline.core.kafka.records import SIGNAL_TRACES, standard_headers


def _kv(key: str, value: str | int | float) -> KeyValue:
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def span(
    trace_id: bytes,
    *,
    parent: bytes = b"",
    name: str = "chat",
    error: bool = False,
    attrs: dict[str, str | int | float] | None = None,
    start_ns: int | None = None,
    duration_ms: int = 120,
) -> Span:
    start = start_ns or time.time_ns() - 1_000_000_000
    s = Span(
        trace_id=trace_id,
        span_id=os.urandom(8),
        parent_span_id=parent,
        name=name,
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start,
        end_time_unix_nano=start + duration_ms * 1_000_000,
        status=Status(code=Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_OK),
    )
    s.attributes.extend(_kv(k, v) for k, v in (attrs or {}).items())
    return s


def chat_attrs(
    output: str = "Paris is the capital.", tokens: tuple[int, int] = (40, 12)
) -> dict[str, str | int | float]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": tokens[0],
        "gen_ai.usage.output_tokens": tokens[1],
        "gen_ai.output.messages": (
            '[{"role":"assistant","parts":[{"type":"text","content":' + _json_str(output) + "}]}]"
        ),
    }


def _json_str(text: str) -> str:
    import json

    return json.dumps(text)


def traces_data(*spans: Span) -> bytes:
    return TracesData(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])]
    ).SerializeToString()


def trace_spans(trace_id: bytes, llm_calls: int = 2, *, error: bool = False) -> list[Span]:
    """Children first, root last (the usual export order)."""
    root = span(trace_id, name="agent.run", duration_ms=900)
    kids = [
        span(trace_id, parent=root.span_id, attrs=chat_attrs(), error=error and i == 0)
        for i in range(llm_calls)
    ]
    return [*kids, root]


def records(topic: str, trace_id: bytes, spans: list[Span], project: str = "shop") -> list[OutRecord]:
    headers = standard_headers(project, time.time_ns(), SIGNAL_TRACES)
    return [OutRecord(topic, traces_data(s), trace_id, list(headers)) for s in spans]


def message(
    trace_id: bytes,
    spans: list[Span],
    *,
    partition: int = 0,
    offset: int = 0,
    project: str = "shop",
    topic: str = "t.redacted",
) -> InMessage:
    headers = standard_headers(project, time.time_ns(), SIGNAL_TRACES)
    return InMessage(topic, partition, offset, trace_id, traces_data(*spans), list(headers))
