"""OTLP log records carrying GenAI events, matched to generated traces.

Several instrumentations put message content in log events instead of span attributes
(content capture as events), so ingest, redaction and storage must handle the logs
signal too. Events are derived from the ``chat`` spans of generated trace requests, so
their trace/span ids point at real spans and the same planted PII shows up in both
signals.

Two styles:
- ``"details"``: one ``gen_ai.client.inference.operation.details`` event per chat span,
  named with the LogRecord ``event_name`` field and holding the messages as attributes
  (current semantic conventions).
- ``"per_message"``: the older per-message events (``gen_ai.system.message``,
  ``gen_ai.user.message``, ``gen_ai.assistant.message``, ``gen_ai.tool.message``,
  ``gen_ai.choice``) with an ``event.name`` attribute and the content in the body, as
  earlier instrumentation releases emitted them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanline.loadgen.genai_traces import SCOPE_NAME, SCOPE_VERSION, build_requests
from spanline.loadgen.otlp_values import json_value

EventStyle = Literal["details", "per_message"]
_COPIED = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.response.id",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.system_instructions",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
)


def _attr(span: Span, key: str) -> AnyValue | None:
    for kv in span.attributes:
        if kv.key == key:
            return kv.value
    return None


def _details_event(span: Span) -> list[LogRecord]:
    attrs = [KeyValue(key=k, value=v) for k in _COPIED if (v := _attr(span, k)) is not None]
    return [
        LogRecord(
            time_unix_nano=span.end_time_unix_nano,
            observed_time_unix_nano=span.end_time_unix_nano,
            severity_number=SeverityNumber.SEVERITY_NUMBER_INFO,
            event_name="gen_ai.client.inference.operation.details",
            attributes=attrs,
            trace_id=span.trace_id,
            span_id=span.span_id,
            flags=0x01,
        )
    ]


def _event(span: Span, name: str, at: int, body: dict[str, Any]) -> LogRecord:
    provider = _attr(span, "gen_ai.provider.name")
    attrs = [KeyValue(key="event.name", value=AnyValue(string_value=name))]
    if provider is not None:
        attrs.append(KeyValue(key="gen_ai.provider.name", value=provider))
    return LogRecord(
        time_unix_nano=at,
        observed_time_unix_nano=at,
        severity_number=SeverityNumber.SEVERITY_NUMBER_INFO,
        body=json_value(body),
        attributes=attrs,
        trace_id=span.trace_id,
        span_id=span.span_id,
        flags=0x01,
    )


def _legacy_body(message: dict[str, Any]) -> dict[str, Any]:
    """Old event bodies: ``content`` text and ``tool_calls``/``id`` instead of typed parts."""
    body: dict[str, Any] = {}
    texts = [p["content"] for p in message["parts"] if p.get("type") == "text"]
    if texts:
        body["content"] = "\n".join(texts)
    calls = [p for p in message["parts"] if p.get("type") == "tool_call"]
    if calls:
        body["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
            }
            for c in calls
        ]
    responses = [p for p in message["parts"] if p.get("type") == "tool_call_response"]
    if responses:
        body["id"] = responses[0]["id"]
        body["content"] = json.dumps(responses[0]["response"])
    return body


def _per_message_events(span: Span) -> list[LogRecord]:
    records: list[LogRecord] = []
    at = span.start_time_unix_nano
    system = _attr(span, "gen_ai.system_instructions")
    if system is not None:
        parts = json.loads(system.string_value)
        content = "\n".join(p["content"] for p in parts if p.get("type") == "text")
        records.append(_event(span, "gen_ai.system.message", at, {"content": content}))
    inputs = _attr(span, "gen_ai.input.messages")
    for message in json.loads(inputs.string_value) if inputs is not None else []:
        records.append(_event(span, f"gen_ai.{message['role']}.message", at, _legacy_body(message)))
    outputs = _attr(span, "gen_ai.output.messages")
    for index, message in enumerate(json.loads(outputs.string_value) if outputs is not None else []):
        body = {
            "index": index,
            "finish_reason": message.get("finish_reason", "stop"),
            "message": _legacy_body(message),
        }
        records.append(_event(span, "gen_ai.choice", span.end_time_unix_nano, body))
    return records


def _chat_spans(request: ExportTraceServiceRequest) -> Iterable[tuple[int, Span]]:
    for index, rs in enumerate(request.resource_spans):
        for ss in rs.scope_spans:
            for span in ss.spans:
                op = _attr(span, "gen_ai.operation.name")
                if op is not None and op.string_value == "chat":
                    yield index, span


def logs_for_traces(
    requests: Sequence[ExportTraceServiceRequest], style: EventStyle = "details"
) -> list[ExportLogsServiceRequest]:
    """One logs request per trace request, with the GenAI events of its chat spans."""
    make = _details_event if style == "details" else _per_message_events
    out: list[ExportLogsServiceRequest] = []
    for request in requests:
        by_resource: dict[int, list[LogRecord]] = {}
        for index, span in _chat_spans(request):
            by_resource.setdefault(index, []).extend(make(span))
        out.append(
            ExportLogsServiceRequest(
                resource_logs=[
                    ResourceLogs(
                        resource=request.resource_spans[index].resource,
                        scope_logs=[
                            ScopeLogs(
                                scope=InstrumentationScope(name=SCOPE_NAME, version=SCOPE_VERSION),
                                log_records=records,
                            )
                        ],
                    )
                    for index, records in by_resource.items()
                ]
            )
        )
    return out


def build_log_requests(
    total_spans: int,
    batch: int,
    seed: int = 0,
    plant_pii: bool = False,
    start_time_ns: int | None = None,
    style: EventStyle = "details",
) -> tuple[list[ExportTraceServiceRequest], list[ExportLogsServiceRequest]]:
    """Trace requests and their matching logs requests, from the same seed."""
    traces = build_requests(total_spans, batch, seed, plant_pii, start_time_ns)
    return traces, logs_for_traces(traces, style)
