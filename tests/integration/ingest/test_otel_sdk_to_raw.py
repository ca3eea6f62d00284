"""The OpenTelemetry SDK's real OTLP/gRPC exporters -> ingest -> the real broker."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import grpc
import pytest
from opentelemetry import context as otel_context
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from spanline.core.kafka.records import H_PROJECT, H_RECEIVED_AT, H_SCHEMA, H_SIGNAL
from spanline.ingest.service import IngestService
from tests.support.kafka import read_topic_sync
from tests.support.services import ServiceThread

pytestmark = pytest.mark.integration


def _emit_traces(
    endpoint: str, compression: grpc.Compression | None, traces: int, spans_per_trace: int
) -> dict[str, set[str]]:
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, compression=compression)
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("spanline.tests", "1.0")
    expected: dict[str, set[str]] = defaultdict(set)
    for t in range(traces):
        with tracer.start_as_current_span(
            "invoke_agent", attributes={"gen_ai.operation.name": "invoke_agent"}
        ) as root:
            expected[format(root.get_span_context().trace_id, "032x")].add(
                format(root.get_span_context().span_id, "016x")
            )
            for i in range(spans_per_trace - 1):
                with tracer.start_as_current_span(
                    f"chat {t}.{i}", attributes={"gen_ai.request.model": "gpt-4o"}
                ) as s:
                    expected[format(s.get_span_context().trace_id, "032x")].add(
                        format(s.get_span_context().span_id, "016x")
                    )
    provider.shutdown()
    return expected


@pytest.mark.parametrize("compression", [None, grpc.Compression.Gzip], ids=["plain", "gzip"])
def test_sdk_traces_land_on_raw_grouped_by_trace(
    make_settings: Any, compression: grpc.Compression | None
) -> None:
    settings = make_settings()
    before = time.time_ns()
    with ServiceThread(IngestService(settings)) as svc:
        endpoint = f"127.0.0.1:{svc.component.port}"
        expected = _emit_traces(endpoint, compression, traces=5, spans_per_trace=4)
    total = sum(len(v) for v in expected.values())
    msgs = read_topic_sync(settings.kafka.bootstrap, settings.topics.raw, min_messages=total)
    found: dict[str, set[str]] = defaultdict(set)
    partitions_per_trace: dict[str, set[int]] = defaultdict(set)
    for m in msgs:
        assert m.header(H_SIGNAL) == b"traces"
        assert m.header(H_PROJECT) == b"default"
        assert m.header(H_SCHEMA) == b"1"
        assert before <= int(m.header_str(H_RECEIVED_AT)) <= time.time_ns()
        data = TracesData.FromString(m.value)
        assert "service.name" in {a.key for a in data.resource_spans[0].resource.attributes}
        for rs in data.resource_spans:
            assert rs.scope_spans[0].scope.name == "spanline.tests"
            for ss in rs.scope_spans:
                for span in ss.spans:
                    # one trace per record, keyed by its raw 16-byte trace id
                    assert span.trace_id == m.key
                    found[span.trace_id.hex()].add(span.span_id.hex())
        partitions_per_trace[m.key.hex()].add(m.partition)  # type: ignore[union-attr]
    assert found == expected
    assert all(len(p) == 1 for p in partitions_per_trace.values())


def test_sdk_logs_land_on_raw(make_settings: Any) -> None:
    settings = make_settings()
    with ServiceThread(IngestService(settings)) as svc:
        endpoint = f"127.0.0.1:{svc.component.port}"
        provider = LoggerProvider(resource=Resource.create({"service.name": "sdk-logs"}))
        provider.add_log_record_processor(
            SimpleLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True))
        )
        tracer_provider = TracerProvider()
        tracer = tracer_provider.get_tracer("t")
        logger = provider.get_logger("gen_ai.events")
        with tracer.start_as_current_span("chat") as span:
            ctx = span.get_span_context()
            logger.emit(body={"content": "hello"}, event_name="gen_ai.user.message")
        logger.emit(body="no trace", event_name="app.start", context=otel_context.Context())
        provider.shutdown()
    msgs = read_topic_sync(settings.kafka.bootstrap, settings.topics.raw, min_messages=2)
    assert {m.header(H_SIGNAL) for m in msgs} == {b"logs"}
    keys = {m.key for m in msgs}
    assert ctx.trace_id.to_bytes(16, "big") in keys
    assert b"default" in keys  # records without a trace id are keyed by project
    bodies = []
    for m in msgs:
        for rl in LogsData.FromString(m.value).resource_logs:
            for sl in rl.scope_logs:
                bodies.extend(sl.log_records)
    assert len(bodies) == 2
