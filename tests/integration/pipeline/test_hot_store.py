"""The whole hot path with real parts: OTel SDK -> ingest -> broker -> redactor -> writer -> chdb."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from spanline.loadgen.genai_traces import build_trace_set
from spanline.spans.pricing import PricingTable
from tests.support.pipeline import Pipeline

pytestmark = pytest.mark.integration

TRACE_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
EMAIL = "maria.gonzalez@example.org"
CARD = "4111 1111 1111 1111"


def _send_requests(endpoint: str, bodies: list[bytes]) -> None:
    with grpc.insecure_channel(endpoint, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        call = channel.unary_unary(TRACE_PATH, request_serializer=None, response_deserializer=None)
        for body in bodies:
            call(body, timeout=30)


def _sdk_chat_trace(endpoint: str) -> tuple[str, str]:
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    tracer = provider.get_tracer("support-bot")
    messages = [{"role": "user", "parts": [{"type": "text", "content": f"I am {EMAIL}, card {CARD}"}]}]
    with tracer.start_as_current_span("invoke_agent support") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        root.set_attribute("gen_ai.agent.name", "support")
        root.set_attribute("gen_ai.conversation.id", "conv-42")
        with tracer.start_as_current_span("chat gpt-4o") as chat:
            chat.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-08-06",
                    "gen_ai.usage.input_tokens": 1200,
                    "gen_ai.usage.output_tokens": 300,
                    "gen_ai.response.finish_reasons": ["stop"],
                    "gen_ai.input.messages": json.dumps(messages),
                }
            )
        with tracer.start_as_current_span("execute_tool lookup") as tool:
            tool.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"})
            tool.set_status(Status(StatusCode.ERROR, "tool timed out"))
        trace_id = format(root.get_span_context().trace_id, "032x")
        chat_id = format(chat.get_span_context().span_id, "016x")
    provider.shutdown()
    return trace_id, chat_id


def test_sdk_spans_land_with_genai_columns_cost_and_no_pii(pipeline: Pipeline) -> None:
    trace_id, chat_id = _sdk_chat_trace(pipeline.otlp_endpoint)
    loadgen = build_trace_set(200, 50, seed=11, plant_pii=True)
    _send_requests(pipeline.otlp_endpoint, [r.SerializeToString() for r in loadgen.requests])

    pipeline.wait_for(f"SELECT count() FROM spans WHERE trace_id = '{trace_id}'", 3)
    pipeline.wait_for("SELECT count() FROM spans", 203)
    row = pipeline.db.query(
        "SELECT operation, provider, request_model, response_model, input_tokens, output_tokens, "
        "finish_reasons, conversation_id, service_name, cost_usd, input_messages "
        f"FROM spans WHERE span_id = '{chat_id}'"
    ).rows[0]
    op, prov, req, resp, tin, tout, finish, _conv, svc, cost, messages = row
    assert (op, prov, req, resp, tin, tout) == ("chat", "openai", "gpt-4o", "gpt-4o-2024-08-06", 1200, 300)
    assert list(finish) == ["stop"] and svc == "support-bot"
    price = PricingTable.load().lookup("openai", "gpt-4o-2024-08-06")
    assert price is not None
    expected = (1200 * price.input + 300 * price.output) / 1e6
    assert cost == pytest.approx(expected, rel=1e-6)
    json.loads(messages)  # still valid JSON after redaction
    assert EMAIL not in messages and "4111" not in messages
    assert (
        pipeline.scalar(
            f"SELECT status_code FROM spans WHERE trace_id = '{trace_id}' AND tool_name = 'lookup'"
        )
        == "ERROR"
    )
    assert (
        pipeline.scalar(
            f"SELECT conversation_id FROM spans WHERE trace_id = '{trace_id}' AND operation = 'invoke_agent'"
        )
        == "conv-42"
    )

    # No planted value anywhere in any table.
    dump = json.dumps(pipeline.db.query("SELECT * FROM spans").rows, default=str)
    dump += json.dumps(pipeline.db.query("SELECT * FROM audit").rows, default=str)
    planted = [EMAIL, "4111111111111111", *(p.value for p in loadgen.planted)]
    leaked = [p for p in planted if p in dump]
    assert not leaked, f"{len(leaked)} planted values stored"
    assert pipeline.scalar("SELECT sum(count) FROM audit") >= len(loadgen.planted)


def test_replay_with_a_reset_group_returns_each_span_once(pipeline: Pipeline) -> None:
    loadgen = build_trace_set(300, 100, seed=12)
    _send_requests(pipeline.otlp_endpoint, [r.SerializeToString() for r in loadgen.requests])
    pipeline.wait_for("SELECT count() FROM spans", 300)
    pipeline.writer.terminate(60)
    # A new consumer group reads spanline.redacted from the start again: a full replay.
    pipeline.restart_writer({"SPANLINE_KAFKA_GROUP_PREFIX": pipeline.settings.kafka.group_prefix + "-replay"})
    pipeline.wait_for(
        "SELECT sum(value) FROM system.events WHERE event = 'InsertedRows'",
        lambda v: v is not None and v >= 300,
    )
    assert pipeline.scalar("SELECT count() FROM spans") == 300
    assert pipeline.scalar("SELECT uniqExact(trace_id, span_id) FROM spans") == 300


def test_writer_sigkill_mid_batch_then_restart_exactly_once(pipeline: Pipeline) -> None:
    loadgen = build_trace_set(3000, 100, seed=13)
    bodies = [r.SerializeToString() for r in loadgen.requests]
    _send_requests(pipeline.otlp_endpoint, bodies[:10])
    pipeline.wait_for("SELECT count() FROM spans", lambda n: n > 0)
    _send_requests(pipeline.otlp_endpoint, bodies[10:])
    pipeline.writer.kill()  # SIGKILL while it is consuming the rest
    pipeline.restart_writer()
    pipeline.wait_for("SELECT count() FROM spans", 3000, timeout_s=120)
    assert pipeline.scalar("SELECT uniqExact(trace_id, span_id) FROM spans") == 3000


def _chattr(path: Path, flag: str) -> bool:
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


def test_clickhouse_unavailable_then_recovers_without_loss(pipeline: Pipeline) -> None:
    _send_requests(
        pipeline.otlp_endpoint, [r.SerializeToString() for r in build_trace_set(100, 100, seed=14).requests]
    )
    pipeline.wait_for("SELECT count() FROM spans", 100)
    spans_dir = Path(pipeline.settings.data_dir).resolve() / "clickhouse" / "store"
    table_dirs = [p for p in spans_dir.glob("*/*") if p.is_dir() and any(p.glob("*_*_*_*"))]
    if not table_dirs or not all(_chattr(d, "+i") for d in table_dirs):
        for d in table_dirs:
            _chattr(d, "-i")
        pytest.skip("filesystem does not support immutable directories (chattr)")
    try:
        _send_requests(
            pipeline.otlp_endpoint,
            [r.SerializeToString() for r in build_trace_set(500, 100, seed=15).requests],
        )
        # The writer cannot insert: it keeps retrying, paused, and commits nothing.
        deadline = time.monotonic() + 30
        while (
            time.monotonic() < deadline
            and "spanline_processing_retries_total 0.0" in pipeline.writer.metrics()
        ):
            time.sleep(0.5)
        metrics = pipeline.writer.metrics()
        assert "spanline_kafka_consumer_paused 1.0" in metrics
        assert pipeline.scalar("SELECT count() FROM spans") == 100
    finally:
        for d in table_dirs:
            _chattr(d, "-i")
    pipeline.wait_for("SELECT count() FROM spans", 600, timeout_s=90)
    assert pipeline.scalar("SELECT uniqExact(trace_id, span_id) FROM spans") == 600
    assert "spanline_kafka_consumer_paused 0.0" in pipeline.writer.metrics()


def test_3mb_payload_round_trips_byte_for_byte_through_spanline_trace(pipeline: Pipeline) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    words = [f"token{i % 977}" for i in range(400_000)]
    payload = json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": " ".join(words)[: 3 * 1024 * 1024]}]}]
    )
    assert len(payload) > 3 * 1024 * 1024
    req = ExportTraceServiceRequest()
    now = time.time_ns()
    span = Span(
        trace_id=b"\x7a" * 16,
        span_id=b"\x7b" * 8,
        name="chat big",
        start_time_unix_nano=now,
        end_time_unix_nano=now + 10**9,
    )
    span.attributes.append(KeyValue(key="gen_ai.operation.name", value=AnyValue(string_value="chat")))
    span.attributes.append(KeyValue(key="gen_ai.input.messages", value=AnyValue(string_value=payload)))
    req.resource_spans.add().scope_spans.add().spans.append(span)
    _send_requests(pipeline.otlp_endpoint, [req.SerializeToString()])
    pipeline.wait_for("SELECT count() FROM spans", 1)
    env = {**os.environ, **pipeline.env}
    out = subprocess.run(
        [sys.executable, "-m", "spanline.cli.main", "trace", "7a" * 16, "--json"],
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    doc = json.loads(out)
    spans = doc["spans"] if isinstance(doc, dict) else doc
    (got,) = [s for s in spans if s["span_id"] == "7b" * 8]
    assert got["input_messages"] == payload
