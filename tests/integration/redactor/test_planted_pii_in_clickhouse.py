"""Names, national phone formats, national ids and a short-body Stripe key planted in GenAI
content (span attributes, span events and log records) go through the real pipeline
(ingest -> broker -> redactor -> writer -> chdb) and none of them is in any string column
of any ClickHouse table."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from spanline.core.broker import free_port
from tests.support.kafka import unique_prefix
from tests.support.pipeline import Pipeline

pytestmark = pytest.mark.integration

TRACE = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"

# (sentence planted, substring that must not survive anywhere)
PLANTED = [
    ("Hi, my name is Margarethe Vollrath and I need my invoice.", "Vollrath"),
    ("Thanks!\nKind regards,\nTobias Ebbinghaus", "Ebbinghaus"),
    ("Dear Mr. Quillfeather, your order is ready.", "Quillfeather"),
    ("Ruf mich unter 030 12345678 an", "030 12345678"),
    ("my mobile is 07911 123456", "07911 123456"),
    ("appelez le 06 12 34 56 78 demain", "06 12 34 56 78"),
    ("call (212) 555-0199 tonight", "555-0199"),
    ("Meine Steuer-ID ist 36574261809.", "36574261809"),
    ("PESEL: 44051401359", "44051401359"),
    ("use sk_live_4eC39HqLyjWDarjtT1zdp7dc for the test", "4eC39HqLyjWDarjtT1zdp7dc"),
]
TRACE_ID = bytes.fromhex("5f1e" * 8)


def _kv(key: str, value: str | int) -> KeyValue:
    v = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
    return KeyValue(key=key, value=v)


def _traces() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(_kv("service.name", "support-bot"))
    span = rs.scope_spans.add().spans.add(
        trace_id=TRACE_ID, span_id=bytes.fromhex("0102030405060708"), name="chat gpt-4o"
    )
    now = time.time_ns()
    span.start_time_unix_nano, span.end_time_unix_nano = now - 1_000_000, now
    messages = [{"role": "user", "parts": [{"type": "text", "content": s}]} for s, _ in PLANTED[:5]]
    output = [{"role": "assistant", "parts": [{"type": "text", "content": s}]} for s, _ in PLANTED[5:]]
    span.attributes.extend(
        [
            _kv("gen_ai.operation.name", "chat"),
            _kv("gen_ai.request.model", "gpt-4o"),
            _kv("gen_ai.input.messages", json.dumps(messages)),
            _kv("gen_ai.output.messages", json.dumps(output)),
            _kv("gen_ai.tool.call.arguments", json.dumps({"note": PLANTED[7][0], "pesel": "44051401359"})),
        ]
    )
    event = span.events.add(name="gen_ai.user.message", time_unix_nano=now)
    event.attributes.append(_kv("content", " ".join(s for s, _ in PLANTED)))
    return req


def _logs() -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.append(_kv("service.name", "support-bot"))
    scope_logs = rl.scope_logs.add()
    now = time.time_ns()
    for i, (sentence, _) in enumerate(PLANTED):
        rec = scope_logs.log_records.add(
            time_unix_nano=now + i, trace_id=TRACE_ID, span_id=bytes.fromhex("0102030405060708")
        )
        rec.event_name = "gen_ai.user.message"
        # GenAI events carry the message as a JSON body; a repr()'d variant with a literal \n too
        rec.body.string_value = json.dumps({"role": "user", "content": sentence}) if i % 2 else repr(sentence)
        rec.attributes.append(_kv("gen_ai.system", "openai"))
    return req


@pytest.fixture
def pipeline(make_settings: Any, tmp_path: Path) -> Iterator[Pipeline]:
    settings = make_settings(writer={"query_port": free_port()}, kafka={"group_prefix": unique_prefix("g")})
    with Pipeline(settings, tmp_path) as p:
        yield p


def _send(endpoint: str, path: str, body: bytes) -> None:
    with grpc.insecure_channel(endpoint) as channel:
        channel.unary_unary(path, request_serializer=None, response_deserializer=None)(body, timeout=30)


def test_planted_pii_is_in_no_clickhouse_string_column(pipeline: Pipeline) -> None:
    _send(pipeline.otlp_endpoint, TRACE, _traces().SerializeToString())
    _send(pipeline.otlp_endpoint, LOGS, _logs().SerializeToString())
    pipeline.wait_for("SELECT count() FROM spans", 1)
    pipeline.wait_for("SELECT count() FROM logs", len(PLANTED))
    pipeline.wait_for("SELECT count() > 0 FROM audit", lambda v: bool(v))

    # the content arrived, redacted (a test that found nothing because nothing arrived would pass)
    messages = pipeline.scalar("SELECT input_messages FROM spans")
    assert "<NAME>" in messages and "<PHONE>" in messages, messages
    bodies = " ".join(r[0] for r in pipeline.db.query("SELECT body FROM logs").rows)
    assert "<PL_PESEL>" in bodies and "<STRIPE_KEY>" in bodies, bodies

    columns = pipeline.db.query(
        "SELECT table, name FROM system.columns WHERE database = currentDatabase() "
        "AND (type LIKE '%String%') ORDER BY table, name"
    ).rows
    tables: dict[str, list[str]] = {}
    for table, name in columns:
        tables.setdefault(table, []).append(name)
    assert {"spans", "logs", "audit"} <= set(tables)
    needles = "[" + ", ".join("'" + v.replace("'", "\\'") + "'" for _, v in PLANTED) + "]"
    for table, names in tables.items():
        text = "concat(" + ", ' ', ".join(f"toString(`{n}`)" for n in names) + ")"
        leaks = pipeline.scalar(f"SELECT count() FROM `{table}` WHERE multiSearchAny({text}, {needles})")
        assert leaks == 0, (table, pipeline.db.query(f"SELECT {text} FROM `{table}` LIMIT 3").rows)
