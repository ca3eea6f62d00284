"""ingest -> raw -> redactor -> redacted on the real broker: no planted value survives."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

from spanline.core.envelope import new_key
from spanline.core.kafka.dlq import H_ERROR_REASON
from spanline.core.kafka.records import H_ENCRYPTION, H_PROJECT
from spanline.ingest.service import IngestService
from spanline.loadgen.genai_logs import build_log_requests
from spanline.redactor import service as redactor_service
from spanline.redactor.engine import Redactor
from spanline.v1.spanline_pb2 import AuditCount
from tests.support.kafka import read_topic_sync
from tests.support.services import ServiceThread

pytestmark = pytest.mark.integration

TRACE = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def _send(port: int, path: str, bodies: list[bytes]) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
    for body in bodies:
        call(body, timeout=20)
    channel.close()


def test_no_planted_value_reaches_redacted(make_settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(security={"raw_encryption_key": new_key()})
    traces, logs = build_log_requests(total_spans=300, batch=50, seed=7, plant_pii=True)
    from spanline.loadgen.genai_traces import build_trace_set

    trace_set = build_trace_set(300, 50, seed=7, plant_pii=True)
    planted = [p.value for p in trace_set.planted]
    assert planted, "loadgen planted nothing"
    with ServiceThread(IngestService(settings)) as ingest:
        _send(ingest.component.port, TRACE, [r.SerializeToString() for r in traces])
        _send(ingest.component.port, LOGS, [r.SerializeToString() for r in logs])

    raw = read_topic_sync(settings.kafka.bootstrap, settings.topics.raw, min_messages=1)
    # The raw topic holds only ciphertext when a key is configured.
    assert all(m.header(H_ENCRYPTION) for m in raw)
    assert not any(p.encode() in m.value for m in raw for p in planted)

    with ServiceThread(redactor_service.build(settings)) as svc:
        deadline = time.monotonic() + 60
        while svc.component.consumer.processed < len(raw) and time.monotonic() < deadline:
            time.sleep(0.2)
    assert svc.component.consumer.processed >= len(raw)

    redacted = read_topic_sync(settings.kafka.bootstrap, settings.topics.redacted, min_messages=len(raw))
    assert len(redacted) == len(raw)
    assert {m.key for m in redacted} == {m.key for m in raw}
    blob = b"\n".join(m.value for m in redacted)
    leaked = [p for p in planted if p.encode() in blob]
    assert not leaked, f"{len(leaked)} planted values leaked"
    assert b"spanline.redaction" in blob
    assert all(m.header(H_ENCRYPTION) is None and m.header(H_PROJECT) == b"default" for m in redacted)
    signals = {m.header(b"spanline-signal".decode()) for m in redacted}
    assert signals == {b"traces", b"logs"}
    # Messages that were JSON stay JSON.
    for m in redacted:
        if m.header("spanline-signal") != b"traces":
            continue
        for rs in TracesData.FromString(m.value).resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    for kv in span.attributes:
                        if kv.key in ("gen_ai.input.messages", "gen_ai.output.messages"):
                            json.loads(kv.value.string_value)

    audit = read_topic_sync(settings.kafka.bootstrap, settings.topics.audit, min_messages=1)
    counts = [AuditCount.FromString(m.value) for m in audit]
    assert sum(c.count for c in counts) >= len(planted)
    assert {c.project_id for c in counts} == {"default"}

    # No raw value in any log line of the whole run.
    text = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert not [p for p in planted if p in text]


def test_fail_closed_detector_raises(make_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A detector forced to raise -> the message is in the DLQ and absent downstream."""
    settings = make_settings()
    req = ExportTraceServiceRequest()
    span = Span(trace_id=b"\x11" * 16, span_id=b"\x22" * 8, name="chat")
    span.attributes.append(
        KeyValue(key="gen_ai.input.messages", value=AnyValue(string_value="mail bob@example.com"))
    )
    req.resource_spans.add().scope_spans.add().spans.append(span)
    good = ExportTraceServiceRequest()
    span2 = Span(trace_id=b"\x33" * 16, span_id=b"\x44" * 8, name="chat")
    good.resource_spans.add().scope_spans.add().spans.append(span2)
    with ServiceThread(IngestService(settings)) as ingest:
        _send(ingest.component.port, TRACE, [req.SerializeToString(), good.SerializeToString()])

    redactor = Redactor()
    policy = redactor.policy_for("default")
    walk_cls = type(policy)
    import spanline.redactor.walker as walker

    original = walker.MessageWalk.text

    def boom(self: Any, value: str) -> Any:
        if "bob@" in value:
            raise RuntimeError("detector exploded on " + value)
        return original(self, value)

    monkeypatch.setattr(walker.MessageWalk, "text", boom)
    del walk_cls
    with ServiceThread(redactor_service.build(settings, redactor=redactor)) as svc:
        deadline = time.monotonic() + 30
        while svc.component.consumer.processed < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    dlq = read_topic_sync(settings.kafka.bootstrap, settings.topics.raw + ".dlq", min_messages=1)
    assert len(dlq) == 1 and dlq[0].key == b"\x11" * 16
    assert dlq[0].header(H_ERROR_REASON) == b"redaction_failed"
    assert b"bob@example.com" not in dlq[0].header("spanline-error-detail")  # type: ignore[operator]
    redacted = read_topic_sync(settings.kafka.bootstrap, settings.topics.redacted, min_messages=1)
    assert [m.key for m in redacted] == [b"\x33" * 16]


def test_garbage_on_raw_goes_to_dlq(make_settings: Any) -> None:
    import asyncio

    from spanline.core.kafka import OutRecord, Producer

    settings = make_settings()

    async def produce() -> None:
        p = Producer(settings.kafka)
        await p.send_all(
            [
                OutRecord(settings.topics.raw, b"\xff\x00garbage", b"k1", [("spanline-signal", b"traces")]),
                OutRecord(settings.topics.raw, b"\x0a\x05abc", b"k2", [("spanline-signal", b"metrics")]),
                OutRecord(settings.topics.raw, b"sealed?", b"k3", [("spanline-encryption", b"aesgcm-v1:00")]),
            ]
        )
        await p.stop()

    asyncio.run(produce())
    with ServiceThread(redactor_service.build(settings)) as svc:
        deadline = time.monotonic() + 30
        while svc.component.consumer.processed < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
    dlq = read_topic_sync(settings.kafka.bootstrap, settings.topics.raw + ".dlq", min_messages=3)
    assert sorted(m.key for m in dlq) == [b"k1", b"k2", b"k3"]
    assert {m.header(H_ERROR_REASON) for m in dlq} == {b"decode_error"}
