"""OTLP/HTTP into ingest: the OTel SDK's HTTP exporter, OTLP/JSON with httpx, gzip, every
refusal the OTLP/HTTP spec names, and a broker outage; records checked on the real raw topic."""

from __future__ import annotations

import gzip
import json
import os
import signal
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client import REGISTRY

from spanline.core.broker import BundledBroker, free_port
from spanline.core.kafka.records import H_PROJECT, H_SIGNAL, InMessage
from spanline.ingest.config import hash_api_key
from spanline.ingest.service import IngestService
from tests.integration.ingest.test_bad_input import _request, _span
from tests.support.kafka import read_topic_sync
from tests.support.services import ServiceThread

pytestmark = pytest.mark.integration

PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}


def _requests(code: str, signal: str = "traces") -> float:
    value = REGISTRY.get_sample_value(
        "spanline_ingest_requests_total", {"protocol": "http", "signal": signal, "code": code}
    )
    return value or 0.0


def _accepted() -> float:
    return (
        REGISTRY.get_sample_value(
            "spanline_ingest_items_accepted_total", {"protocol": "http", "signal": "traces"}
        )
        or 0.0
    )


def _spans(msgs: list[InMessage]) -> list[tuple[bytes, Span]]:
    out: list[tuple[bytes, Span]] = []
    for m in msgs:
        assert m.header(H_SIGNAL) == b"traces"
        for rs in TracesData.FromString(m.value).resource_spans:
            for ss in rs.scope_spans:
                out.extend((m.key or b"", span) for span in ss.spans)
    return out


@pytest.fixture
def ingest(make_settings: Any) -> Any:
    settings = make_settings(ingest={"max_receive_bytes": 64 * 1024})
    with ServiceThread(IngestService(settings)) as svc:
        yield settings, f"http://127.0.0.1:{svc.component.otlp_http_port}"


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip], ids=["plain", "gzip"])
def test_sdk_http_exporter_traces_and_logs_land_on_raw(make_settings: Any, compression: Compression) -> None:
    settings = make_settings()
    ok_before, logs_before = _requests("200"), _requests("200", "logs")
    with ServiceThread(IngestService(settings)) as svc:
        base = f"http://127.0.0.1:{svc.component.otlp_http_port}"
        for code in ("413", "415", "429", "503"):  # refusal panels read 0 before any refusal
            labels = {"protocol": "http", "signal": "traces", "code": code}
            assert REGISTRY.get_sample_value("spanline_ingest_requests_total", labels) is not None, code
        provider = TracerProvider(resource=Resource.create({"service.name": "http-sdk"}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces", compression=compression))
        )
        log_provider = LoggerProvider(resource=Resource.create({"service.name": "http-sdk"}))
        log_provider.add_log_record_processor(
            SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{base}/v1/logs", compression=compression))
        )
        tracer = provider.get_tracer("spanline.tests.http")
        expected: dict[bytes, set[bytes]] = defaultdict(set)
        for _ in range(3):
            with tracer.start_as_current_span("invoke_agent") as root:
                ctx = root.get_span_context()
                expected[ctx.trace_id.to_bytes(16, "big")].add(ctx.span_id.to_bytes(8, "big"))
                with tracer.start_as_current_span("chat", attributes={"gen_ai.request.model": "m"}) as s:
                    expected[ctx.trace_id.to_bytes(16, "big")].add(
                        s.get_span_context().span_id.to_bytes(8, "big")
                    )
                    log_provider.get_logger("gen_ai.events").emit(
                        body={"content": "hi"}, event_name="gen_ai.user.message"
                    )
        assert provider.force_flush() and log_provider.force_flush()
        provider.shutdown()
        log_provider.shutdown()
    assert _requests("200") - ok_before == 6  # one export per span (SimpleSpanProcessor)
    assert _requests("200", "logs") - logs_before == 3
    msgs = read_topic_sync(settings.kafka.bootstrap, settings.topics.raw, min_messages=9)
    traces = [m for m in msgs if m.header(H_SIGNAL) == b"traces"]
    logs = [m for m in msgs if m.header(H_SIGNAL) == b"logs"]
    found: dict[bytes, set[bytes]] = defaultdict(set)
    for key, span in _spans(traces):
        assert span.trace_id == key
        found[key].add(span.span_id)
    assert found == expected
    assert {m.header(H_PROJECT) for m in msgs} == {b"default"}
    assert {m.key for m in logs} == set(expected)
    records = [
        r
        for m in logs
        for rl in LogsData.FromString(m.value).resource_logs
        for sl in rl.scope_logs
        for r in sl.log_records
    ]
    assert len(records) == 3 and all(r.event_name == "gen_ai.user.message" for r in records)


def _json_body(
    trace_hex: str, span_hex: str, *, kind: Any = "SPAN_KIND_CLIENT", extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": trace_hex,
        "spanId": span_hex,
        "parentSpanId": "",
        "name": "chat gpt-4o",
        "kind": kind,
        "startTimeUnixNano": "1700000000000000000",  # int64 as a string, per OTLP/JSON
        "endTimeUnixNano": 1700000000500000000,  # or as a number
        "attributes": [
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
            {"key": "blob", "value": {"bytesValue": "AAEC"}},
        ],
        "status": {"code": 2, "message": "boom"},
        "links": [{"traceId": "0f" * 16, "spanId": "0e" * 8}],
        "someFutureField": {"ignored": True},
        **(extra or {}),
    }
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-app"}}]},
                "scopeSpans": [{"scope": {"name": "json-scope"}, "spans": [span]}],
            }
        ]
    }


def test_json_request_with_hex_ids_enums_and_int64_strings(ingest: Any) -> None:
    settings, base = ingest
    body = _json_body("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", kind="SPAN_KIND_CLIENT")
    second = _json_body("5b8efff798038103d269b633813fc60d", "eee19b7ec3c1b175", kind=3)
    r = httpx.post(f"{base}/v1/traces", content=json.dumps(body), headers=JS)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == {}
    r = httpx.post(
        f"{base}/v1/traces",
        content=gzip.compress(json.dumps(second).encode()),
        headers={**JS, "Content-Encoding": "gzip"},
    )
    assert r.status_code == 200, r.text
    msgs = read_topic_sync(settings.kafka.bootstrap, settings.topics.raw, min_messages=2)
    spans = dict(_spans(msgs))
    span = spans[bytes.fromhex("5b8efff798038103d269b633813fc60c")]
    assert span.span_id == bytes.fromhex("eee19b7ec3c1b174")
    assert span.kind == Span.SPAN_KIND_CLIENT
    assert spans[bytes.fromhex("5b8efff798038103d269b633813fc60d")].kind == Span.SPAN_KIND_CLIENT
    assert span.start_time_unix_nano == 1700000000000000000
    assert span.end_time_unix_nano == 1700000000500000000
    assert span.status.code == 2 and span.status.message == "boom"
    attrs = {a.key: a.value for a in span.attributes}
    assert attrs["gen_ai.usage.input_tokens"].int_value == 12
    assert attrs["blob"].bytes_value == b"\x00\x01\x02"  # non-id bytes stay base64, as in protobuf JSON
    assert span.links[0].trace_id == b"\x0f" * 16 and span.links[0].span_id == b"\x0e" * 8


def test_json_partial_success_for_bad_ids(ingest: Any) -> None:
    settings, base = ingest
    body = _json_body("ab" * 16, "cd" * 8)
    spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans.append({**spans[0], "spanId": "not-hex!"})
    spans.append({**spans[0], "traceId": "abcd"})
    r = httpx.post(f"{base}/v1/traces", content=json.dumps(body), headers=JS)
    assert r.status_code == 200
    partial = r.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"  # int64 as a string
    assert "span_id must be 8 bytes" in partial["errorMessage"]
    assert "trace_id must be 16 bytes" in partial["errorMessage"]
    # and in protobuf, the same rule through the same code path
    pb = _request(_span(trace_id=b"\x01" * 15), _span(trace_id=b"\x07" * 16))
    r = httpx.post(f"{base}/v1/traces", content=pb, headers=PB)
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(r.content).partial_success.rejected_spans == 1
    keys = {m.key for m in read_topic_sync(settings.kafka.bootstrap, settings.topics.raw, min_messages=2)}
    assert keys == {b"\xab" * 16, b"\x07" * 16}


def _status(r: httpx.Response) -> Status:
    if r.headers["content-type"].startswith("application/x-protobuf"):
        return Status.FromString(r.content)
    doc = r.json()
    return Status(code=doc.get("code", 0), message=doc.get("message", ""))


BAD_INPUTS = [
    ("garbage protobuf", PB, os.urandom(2048) + b"\xff\xff\xff\xff\x0f", 400, 3),
    ("bad JSON", JS, b'{"resourceSpans": [', 400, 3),
    ("JSON of the wrong shape", JS, b'{"resourceSpans": {"spans": 1}}', 400, 3),
    ("JSON not an object", JS, b"[1, 2]", 400, 3),
    ("bad gzip", {**PB, "Content-Encoding": "gzip"}, b"\x1f\x8b not gzip at all", 400, 3),
    ("truncated gzip", {**PB, "Content-Encoding": "gzip"}, gzip.compress(b"x" * 1000)[:-9], 400, 3),
    ("wrong content type", {"Content-Type": "text/plain"}, b"hello", 415, 3),
    ("unknown content encoding", {**PB, "Content-Encoding": "br"}, b"\x00", 415, 3),
    ("too large", PB, b"\x00" * (65 * 1024), 413, 8),
    ("gzip bomb", {**PB, "Content-Encoding": "gzip"}, gzip.compress(b"\x00" * (2 * 1024 * 1024)), 413, 8),
]


# ids are the case names: the bodies hold random bytes and gzip timestamps, and pytest-xdist
# needs every worker to collect the same ids
@pytest.mark.parametrize(
    ("case", "headers", "body", "status", "rpc_code"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_inputs_get_their_status_and_are_counted(
    ingest: Any, case: str, headers: dict[str, str], body: bytes, status: int, rpc_code: int
) -> None:
    _settings, base = ingest
    before = _requests(str(status))
    with httpx.Client() as client:
        r = client.post(f"{base}/v1/traces", content=body, headers=headers)
        assert r.status_code == status, (case, r.text)
        st = _status(r)
        assert st.code == rpc_code and st.message, case
        if headers.get("Content-Type") == "application/json":
            assert r.headers["content-type"].startswith("application/json")
        assert _requests(str(status)) == before + 1
        # the server keeps serving (a new connection after a 413 that closed it)
        ok = client.post(f"{base}/v1/traces", content=_request(_span()), headers=PB)
        assert ok.status_code == 200


def test_api_keys_over_http(make_settings: Any) -> None:
    settings = make_settings(ingest={"api_keys": {hash_api_key("s3cret-key"): "acme"}})
    with ServiceThread(IngestService(settings)) as svc:
        url = f"http://127.0.0.1:{svc.component.otlp_http_port}/v1/traces"
        before = _requests("401")
        missing = httpx.post(url, content=_request(_span()), headers=PB)
        wrong = httpx.post(url, content=b"{}", headers={**JS, "Authorization": "Bearer nope"})
        assert missing.status_code == wrong.status_code == 401
        assert Status.FromString(missing.content).code == 16
        assert "invalid API key" in wrong.json()["message"]
        assert _requests("401") == before + 2
        for auth in ({"Authorization": "Bearer s3cret-key"}, {"x-spanline-api-key": "s3cret-key"}):
            assert httpx.post(url, content=_request(_span()), headers={**PB, **auth}).status_code == 200
    msgs = read_topic_sync(settings.kafka.bootstrap, settings.topics.raw, min_messages=2)
    assert {m.header(H_PROJECT) for m in msgs} == {b"acme"}


def test_inflight_limit_is_429_with_retry_after(make_settings: Any) -> None:
    settings = make_settings(ingest={"max_inflight_bytes": 2048})
    with ServiceThread(IngestService(settings)) as svc:
        url = f"http://127.0.0.1:{svc.component.otlp_http_port}/v1/traces"
        r = httpx.post(url, content=_request(_span(attrs=1, value="z" * 4096)), headers=PB)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        status = Status.FromString(r.content)
        assert status.code == 8 and "in-flight limit" in status.message
        retry = RetryInfo()
        assert status.details[0].Unpack(retry) and retry.retry_delay.ToNanoseconds() > 0
        assert httpx.post(url, content=_request(_span()), headers=PB).status_code == 200


def test_unknown_path_and_method(ingest: Any) -> None:
    _settings, base = ingest
    assert httpx.post(f"{base}/v1/metrics", content=b"", headers=PB).status_code == 404
    assert httpx.get(f"{base}/v1/traces").status_code == 405
    assert httpx.post(f"{base}/v1/traces", content=b"", headers=PB).status_code == 200  # empty = OK


@pytest.fixture
def own_broker(tmp_path: Path) -> Any:
    b = BundledBroker(port=free_port(), log_path=tmp_path / "own-broker.log")
    yield b
    b.stop()


def test_broker_down_is_503_with_retry_after_and_nothing_acknowledged(
    make_settings: Any, own_broker: BundledBroker
) -> None:
    settings = make_settings(kafka={"bootstrap": own_broker.bootstrap}, ingest={"produce_timeout_s": 1.0})
    with ServiceThread(IngestService(settings)) as svc:
        url = f"http://127.0.0.1:{svc.component.otlp_http_port}/v1/traces"
        accepted, unavailable = _accepted(), _requests("503")
        down = httpx.post(url, content=_request(_span(trace_id=b"\x0a" * 16)), headers=PB, timeout=20)
        assert down.status_code == 503, down.text
        assert int(down.headers["Retry-After"]) >= 1
        assert Status.FromString(down.content).code == 14
        as_json = httpx.post(url, content=json.dumps(_json_body("0a" * 16, "01" * 8)), headers=JS, timeout=20)
        assert as_json.status_code == 503 and as_json.json()["code"] == 14
        assert _accepted() == accepted  # nothing acknowledged
        assert _requests("503") == unavailable + 2

        own_broker.start()
        deadline = time.monotonic() + 30
        while True:
            r = httpx.post(url, content=_request(_span(trace_id=b"\x0d" * 16)), headers=PB, timeout=20)
            if r.status_code == 200:
                break
            assert r.status_code == 503 and time.monotonic() < deadline
            time.sleep(0.3)
    keys = {m.key for m in read_topic_sync(own_broker.bootstrap, settings.topics.raw, min_messages=1)}
    assert b"\x0d" * 16 in keys
    assert b"\x0a" * 16 not in keys  # refused with 503, so not stored behind the client's back either


def test_concurrency_limit_is_429_while_kafka_holds_a_call(
    make_settings: Any, own_broker: BundledBroker
) -> None:
    """A call waiting on a frozen broker holds the only slot: the next gets 429 at once,
    the held one 503 once the produce timeout passes; neither is acknowledged."""
    own_broker.start()
    settings = make_settings(
        kafka={"bootstrap": own_broker.bootstrap},
        ingest={"produce_timeout_s": 2.0, "max_concurrent_rpcs": 1},
    )
    with ServiceThread(IngestService(settings)) as svc:
        url = f"http://127.0.0.1:{svc.component.otlp_http_port}/v1/traces"
        assert httpx.post(url, content=_request(_span()), headers=PB, timeout=20).status_code == 200
        pid = own_broker._proc.pid  # type: ignore[union-attr]
        os.kill(pid, signal.SIGSTOP)
        try:
            with ThreadPoolExecutor(1) as pool:
                held = pool.submit(
                    httpx.post, url, content=_request(_span(trace_id=b"\x0e" * 16)), headers=PB, timeout=20
                )
                deadline = time.monotonic() + 5
                while not REGISTRY.get_sample_value("spanline_ingest_inflight_bytes"):
                    assert time.monotonic() < deadline, "the first call never reached the pipeline"
                    time.sleep(0.02)
                second = httpx.post(url, content=_request(_span()), headers=PB, timeout=20)
                assert second.status_code == 429 and int(second.headers["Retry-After"]) >= 1
                assert "concurrent" in Status.FromString(second.content).message
                assert held.result().status_code == 503
        finally:
            os.kill(pid, signal.SIGCONT)
