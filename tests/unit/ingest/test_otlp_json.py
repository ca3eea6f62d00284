"""OTLP/JSON decoding (the spec's departures from protobuf JSON) and bounded decompression."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanline.ingest import otlp_json
from spanline.ingest.http_receiver import _inflate, _Refused


def _traces(span: dict[str, object]) -> bytes:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


def test_hex_ids_enum_names_and_int64_strings() -> None:
    body = _traces(
        {
            "traceId": "5B8EFFF798038103D269B633813FC60C",  # hex is case-insensitive
            "spanId": "eee19b7ec3c1b174",
            "parentSpanId": "eee19b7ec3c1b173",
            "kind": "SPAN_KIND_SERVER",
            "startTimeUnixNano": "1544712660000000000",
            "droppedAttributesCount": 1,
            "links": [{"traceId": "01" * 16, "spanId": "02" * 8}],
        }
    )
    req = otlp_json.decode(body, ExportTraceServiceRequest)
    assert isinstance(req, ExportTraceServiceRequest)
    span = req.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == bytes.fromhex("5b8efff798038103d269b633813fc60c")
    assert span.parent_span_id == bytes.fromhex("eee19b7ec3c1b173")
    assert span.kind == Span.SPAN_KIND_SERVER
    assert span.start_time_unix_nano == 1544712660000000000
    assert span.links[0].trace_id == b"\x01" * 16


def test_snake_case_keys_and_unknown_fields() -> None:
    body = _traces({"trace_id": "ab" * 16, "span_id": "cd" * 8, "kind": 2, "newField": [1]})
    span = otlp_json.decode(body, ExportTraceServiceRequest).resource_spans[0].scope_spans[0].spans[0]  # type: ignore[attr-defined]
    assert span.trace_id == b"\xab" * 16 and span.kind == Span.SPAN_KIND_SERVER


@pytest.mark.parametrize("bad", ["xyz", "abc", "zz" * 16])
def test_non_hex_id_becomes_an_invalid_id_not_a_decode_error(bad: str) -> None:
    span = otlp_json.decode(_traces({"traceId": bad, "spanId": "01" * 8}), ExportTraceServiceRequest)
    trace_id = span.resource_spans[0].scope_spans[0].spans[0].trace_id  # type: ignore[attr-defined]
    assert len(trace_id) != 16  # the id check rejects the span, as for a wrong-length protobuf id


def test_log_ids() -> None:
    body = json.dumps(
        {
            "resourceLogs": [
                {
                    "scopeLogs": [
                        {
                            "logRecords": [
                                {
                                    "traceId": "0a" * 16,
                                    "spanId": "0b" * 8,
                                    "severityNumber": "SEVERITY_NUMBER_INFO",
                                    "body": {"stringValue": "hi"},
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    ).encode()
    req = otlp_json.decode(body, ExportLogsServiceRequest)
    record = req.resource_logs[0].scope_logs[0].log_records[0]  # type: ignore[attr-defined]
    assert record.trace_id == b"\x0a" * 16 and record.span_id == b"\x0b" * 8 and record.severity_number == 9


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"\xff\xfe",
        b"[]",
        b'{"resourceSpans": 3}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": {}}]}]}]}',
    ],
)
def test_bad_bodies_are_decode_errors(body: bytes) -> None:
    with pytest.raises(DecodeError):
        otlp_json.decode(body, ExportTraceServiceRequest)


def test_empty_body_is_an_empty_request() -> None:
    assert otlp_json.decode(b"", ExportTraceServiceRequest) == ExportTraceServiceRequest()


def test_response_encoding() -> None:
    assert otlp_json.encode(ExportTraceServiceResponse()) == b"{}"
    partial = ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=2, error_message="x")
    )
    assert json.loads(otlp_json.encode(partial)) == {
        "partialSuccess": {"rejectedSpans": "2", "errorMessage": "x"}
    }


def test_inflate_gzip_members_zlib_and_limits() -> None:
    assert _inflate(gzip.compress(b"ab") + gzip.compress(b"cd"), 100) == b"abcd"
    assert _inflate(zlib.compress(b"deflated"), 100) == b"deflated"
    assert _inflate(gzip.compress(b"x" * 100), 100) == b"x" * 100
    with pytest.raises(_Refused) as too_big:
        _inflate(gzip.compress(b"x" * 101), 100)
    assert too_big.value.status == 413
    with pytest.raises(_Refused) as truncated:
        _inflate(gzip.compress(b"y" * 50)[:-12], 100)
    assert truncated.value.status == 400
