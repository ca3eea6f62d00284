"""Every kind of garbage gets the right status or partial_success; the server keeps serving."""

from __future__ import annotations

import os
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanline.ingest.service import IngestService
from tests.support.services import ServiceThread

pytestmark = pytest.mark.integration

PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _span(
    trace_id: bytes = b"\x01" * 16, span_id: bytes = b"\x02" * 8, attrs: int = 2, value: str = "v"
) -> Span:
    s = Span(trace_id=trace_id, span_id=span_id, name="chat")
    for i in range(attrs):
        s.attributes.append(KeyValue(key=f"k{i}", value=AnyValue(string_value=value)))
    return s


def _request(*spans: Span) -> bytes:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    ss.spans.extend(spans)
    return req.SerializeToString()


class _Client:
    def __init__(self, port: int, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
        )
        self.call = self.channel.unary_unary(PATH, request_serializer=None, response_deserializer=None)
        self.metadata = metadata

    def export(self, body: bytes) -> tuple[grpc.StatusCode, ExportTraceServiceResponse | None, str]:
        try:
            raw = self.call(body, timeout=20, metadata=self.metadata)
            return grpc.StatusCode.OK, ExportTraceServiceResponse.FromString(raw), ""
        except grpc.RpcError as exc:
            return exc.code(), None, exc.details() or ""


@pytest.fixture
def ingest(make_settings: Any) -> Any:
    settings = make_settings(ingest={"max_receive_bytes": 8 * 1024 * 1024})
    with ServiceThread(IngestService(settings)) as svc:
        yield _Client(svc.component.port)


def _ok_after(client: _Client) -> None:
    code, resp, _ = client.export(_request(_span()))
    assert code == grpc.StatusCode.OK and resp is not None and resp.partial_success.rejected_spans == 0


def test_random_bytes_invalid_argument(ingest: _Client) -> None:
    code, _, details = ingest.export(os.urandom(4096) + b"\xff\xff\xff\xff\x0f")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid OTLP" in details
    _ok_after(ingest)


def test_truncated_protobuf_invalid_argument(ingest: _Client) -> None:
    body = _request(_span(), _span(span_id=b"\x03" * 8))
    code, _, _ = ingest.export(body[: len(body) - 7])
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    _ok_after(ingest)


def test_wrong_length_ids_rejected_rest_kept(ingest: _Client) -> None:
    body = _request(_span(trace_id=b"\x01" * 15), _span(span_id=b"\x00" * 8), _span(span_id=b"\x05" * 8))
    code, resp, _ = ingest.export(body)
    assert code == grpc.StatusCode.OK and resp is not None
    assert resp.partial_success.rejected_spans == 2
    assert "trace_id must be 16 bytes" in resp.partial_success.error_message
    assert "span_id must be 8 bytes" in resp.partial_success.error_message


def test_10k_attribute_span_rejected(ingest: _Client) -> None:
    code, resp, _ = ingest.export(_request(_span(attrs=10_000), _span(span_id=b"\x06" * 8)))
    assert code == grpc.StatusCode.OK and resp is not None
    assert resp.partial_success.rejected_spans == 1
    assert "too many attributes" in resp.partial_success.error_message


def test_5mb_attribute_value_rejected(ingest: _Client) -> None:
    code, resp, _ = ingest.export(_request(_span(attrs=1, value="x" * (5 * 1024 * 1024))))
    assert code == grpc.StatusCode.OK and resp is not None
    assert resp.partial_success.rejected_spans == 1
    assert "exceeds ingest.max_attribute_value_bytes" in resp.partial_success.error_message
    _ok_after(ingest)


def test_empty_request_ok(ingest: _Client) -> None:
    code, resp, _ = ingest.export(b"")
    assert code == grpc.StatusCode.OK and resp is not None
    assert not resp.HasField("partial_success")


def test_request_over_receive_limit(ingest: _Client) -> None:
    big = _request(
        *[_span(span_id=i.to_bytes(8, "big"), attrs=1, value="y" * 1_000_000) for i in range(1, 11)]
    )
    code, _, _ = ingest.export(big)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    _ok_after(ingest)


def test_too_many_spans_per_request(make_settings: Any) -> None:
    settings = make_settings(ingest={"max_spans_per_request": 3})
    with ServiceThread(IngestService(settings)) as svc:
        client = _Client(svc.component.port)
        code, resp, _ = client.export(_request(*[_span(span_id=i.to_bytes(8, "big")) for i in range(1, 6)]))
        assert code == grpc.StatusCode.OK and resp is not None
        assert resp.partial_success.rejected_spans == 2


def test_api_keys(make_settings: Any) -> None:
    from spanline.ingest.config import hash_api_key

    settings = make_settings(ingest={"api_keys": {hash_api_key("s3cret-key"): "acme"}})
    with ServiceThread(IngestService(settings)) as svc:
        assert _Client(svc.component.port).export(_request(_span()))[0] == grpc.StatusCode.UNAUTHENTICATED
        wrong = _Client(svc.component.port, (("authorization", "Bearer nope"),))
        assert wrong.export(_request(_span()))[0] == grpc.StatusCode.UNAUTHENTICATED
        for md in (("authorization", "Bearer s3cret-key"), ("x-spanline-api-key", "s3cret-key")):
            assert _Client(svc.component.port, (md,)).export(_request(_span()))[0] == grpc.StatusCode.OK


def test_inflight_limit_resource_exhausted(make_settings: Any) -> None:
    settings = make_settings(ingest={"max_inflight_bytes": 2048})
    with ServiceThread(IngestService(settings)) as svc:
        client = _Client(svc.component.port)
        code, _, details = client.export(_request(_span(attrs=1, value="z" * 4096)))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "in-flight limit" in details
        assert client.export(_request(_span()))[0] == grpc.StatusCode.OK


def test_split_oversized_trace_into_several_records(make_settings: Any) -> None:
    """A per-trace message over the Kafka limit becomes several records with the same key."""
    from spanline.core.kafka.records import H_SIGNAL
    from tests.support.kafka import read_topic_sync

    settings = make_settings(kafka={"max_request_size": 1024 * 1024})
    with ServiceThread(IngestService(settings)) as svc:
        client = _Client(svc.component.port)
        spans = [_span(span_id=i.to_bytes(8, "big"), attrs=1, value="w" * 300_000) for i in range(1, 7)]
        code, resp, _ = client.export(_request(*spans))
        assert code == grpc.StatusCode.OK and resp is not None and resp.partial_success.rejected_spans == 0
    msgs = read_topic_sync(settings.kafka.bootstrap, settings.topics.raw, min_messages=2)
    assert len(msgs) >= 2 and {m.key for m in msgs} == {b"\x01" * 16}
    assert all(m.header(H_SIGNAL) == b"traces" for m in msgs)
    assert len({m.partition for m in msgs}) == 1
