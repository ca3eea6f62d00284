"""The whole hot path with real parts: OTel SDK -> ingest -> broker -> redactor -> writer -> chdb."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from spanline.loadgen.genai_traces import build_trace_set
from spanline.spans.pricing import PricingTable
from tests.support.kafka import committed_offsets_sync, end_offsets, read_topic_sync
from tests.support.pipeline import Pipeline
from tests.support.writer_hold import parse_marker

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

    # No planted value in any string column of any table, nor in a service's log.
    planted = [EMAIL, "4111111111111111", *(p.value for p in loadgen.planted)]
    leaked = pipeline.stored_values(planted)
    assert not leaked, {where: len(values) for where, values in leaked.items()}
    assert "spans" in pipeline.stored_values(["gpt-4o-2024-08-06"])  # the scan sees what is stored
    assert pipeline.scalar("SELECT sum(count) FROM audit") >= len(loadgen.planted)


def _span_offsets(pipeline: Pipeline, min_messages: int) -> dict[tuple[str, int], int]:
    """End offset of every partition of spanline.redacted (every message was read)."""
    msgs = read_topic_sync(
        pipeline.settings.kafka.bootstrap, pipeline.settings.topics.redacted, min_messages=min_messages
    )
    return end_offsets(msgs)


def _committed(pipeline: Pipeline, group: str) -> dict[tuple[str, int], int]:
    redacted = pipeline.settings.topics.redacted
    partitions = [(redacted, p) for p in range(16)]  # more than any test topic has
    return committed_offsets_sync(pipeline.settings.kafka.bootstrap, group, partitions)


def _wait_committed(pipeline: Pipeline, group: str, ends: dict[tuple[str, int], int]) -> None:
    deadline = time.monotonic() + 30
    while _committed(pipeline, group) != ends and time.monotonic() < deadline:
        time.sleep(0.3)
    assert _committed(pipeline, group) == ends, "the writer's group did not commit what it wrote"


def test_replay_with_a_reset_group_returns_each_span_once(pipeline: Pipeline) -> None:
    loadgen = build_trace_set(300, 100, seed=12)
    _send_requests(pipeline.otlp_endpoint, [r.SerializeToString() for r in loadgen.requests])
    pipeline.wait_for("SELECT uniqExact(trace_id, span_id) FROM spans", 300)
    assert pipeline.raw_scalar("SELECT count() FROM spans") == 300  # raw: written once so far
    pipeline.writer.terminate(60)
    ends = _span_offsets(pipeline, min_messages=1)
    # The drained writer committed exactly up to the end of what it wrote.
    _wait_committed(pipeline, pipeline.writer_group, ends)

    # A new consumer group reads spanline.redacted from the start again: a full replay.
    replay_prefix = pipeline.settings.kafka.group_prefix + "-replay"
    pipeline.restart_writer({"SPANLINE_KAFKA_GROUP_PREFIX": replay_prefix})
    pipeline.wait_for(
        "SELECT sum(value) FROM system.events WHERE event = 'InsertedRows'",
        lambda v: v is not None and v >= 300,
    )
    _wait_committed(pipeline, f"{replay_prefix}-writer", ends)
    # Raw rows: the replay wrote every span a second time (until a merge folds them) and
    # lost none; the read path (FINAL) shows each span once.
    raw_rows = pipeline.raw_scalar("SELECT count() FROM spans")
    assert 300 <= raw_rows <= 600
    assert pipeline.raw_scalar("SELECT uniqExact(trace_id, span_id) FROM spans") == 300
    assert pipeline.scalar("SELECT count() FROM spans") == 300


def test_writer_sigkill_between_insert_and_commit_then_restart(pipeline: Pipeline) -> None:
    loadgen = build_trace_set(3000, 100, seed=13)
    bodies = [r.SerializeToString() for r in loadgen.requests]
    # The writer that gets killed stops once right after an insert, before its commit.
    pipeline.writer.terminate(60)
    pipeline.writer.module = "tests.support.writer_hold"
    pipeline.restart_writer({"SPANLINE_TEST_HOLD_AFTER_INSERT_S": "120"})
    _send_requests(pipeline.otlp_endpoint, bodies)
    deadline = time.monotonic() + 60
    while (marker := parse_marker(pipeline.writer.logs())) is None:
        assert time.monotonic() < deadline, pipeline.writer.logs()[-3000:]
        time.sleep(0.1)
    # With two batches in flight the next one may still be inserting: let it finish (the
    # loop then waits on the held batch), so every row in the table is uncommitted.
    time.sleep(1.0)
    held_rows = pipeline.raw_scalar("SELECT count() FROM spans")
    committed = _committed(pipeline, pipeline.writer_group)
    pipeline.writer.kill()  # SIGKILL after the held batch was inserted, before its commit
    assert held_rows > 0, "the held batch was not in the table when the writer was killed"
    redacted = pipeline.settings.topics.redacted
    offsets = marker["offsets"]
    assert isinstance(offsets, dict)
    held = {(redacted, int(k.rsplit("/", 1)[1])): v for k, v in offsets.items() if k.startswith(redacted)}
    assert held, marker
    for tp, (low, _high) in held.items():
        assert committed.get(tp, 0) <= low, f"{tp} committed past the held batch: {committed} {held}"

    pipeline.writer.module = "spanline.cli.main"
    pipeline.writer.env.pop("SPANLINE_TEST_HOLD_AFTER_INSERT_S", None)
    pipeline.restart_writer()
    pipeline.wait_for("SELECT uniqExact(trace_id, span_id) FROM spans", 3000, timeout_s=120)
    ends = _span_offsets(pipeline, min_messages=1)
    _wait_committed(pipeline, pipeline.writer_group, ends)
    # Raw rows: nothing lost, and duplicates only from the batches that were inserted but
    # not committed when the writer died (the replay rewrites them).
    assert pipeline.raw_scalar("SELECT uniqExact(trace_id, span_id) FROM spans") == 3000
    assert 3000 <= pipeline.raw_scalar("SELECT count() FROM spans") <= 3000 + held_rows
    assert pipeline.scalar("SELECT count() FROM spans") == 3000


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
