"""OTLP/JSON decoding (the spec's departures from protobuf JSON) and bounded decompression."""

from __future__ import annotations

import base64
import gzip
import json
import math
import zlib
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanline.ingest import otlp_json
from spanline.ingest.http_receiver import _inflate, _Refused
from spanline.loadgen.genai_traces import build_trace_set


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


def _hexify(tree: Any, id_keys: tuple[str, ...]) -> Any:
    """protobuf-JSON (base64 ids) -> OTLP/JSON (hex ids), recursively on the id keys."""
    if isinstance(tree, dict):
        return {
            k: base64.b64decode(v).hex() if k in id_keys and isinstance(v, str) else _hexify(v, id_keys)
            for k, v in tree.items()
        }
    if isinstance(tree, list):
        return [_hexify(v, id_keys) for v in tree]
    return tree


@pytest.mark.parametrize(
    "style",
    [
        {},  # camelCase, enum names, int64 as strings
        {"preserving_proto_field_name": True, "use_integers_for_enums": True},
    ],
    ids=["camel-names", "proto-names-ints"],
)
def test_round_trip_of_generated_agent_traces_and_logs(style: dict[str, bool]) -> None:
    """Every field kind the generator uses (nested AnyValues, doubles, bools, bytes, events,
    links, status, enums) comes back as the exact protobuf message."""
    trace_set = build_trace_set(300, 100, seed=5, plant_pii=True)
    ids = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
    for request in trace_set.requests:
        tree = _hexify(json_format.MessageToDict(request, **style), ids)
        assert otlp_json.decode(json.dumps(tree).encode(), ExportTraceServiceRequest) == request
    logs = ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add()
    record.trace_id, record.span_id, record.time_unix_nano = b"\x01" * 16, b"\x02" * 8, 2**63 + 5
    record.body.kvlist_value.values.add(key="content", value=AnyValue(bytes_value=b"\xff\x00"))
    record.attributes.add(key="ratio", value=AnyValue(double_value=0.25))
    record.severity_number = 17
    tree = _hexify(json_format.MessageToDict(logs, **style), ids)
    assert otlp_json.decode(json.dumps(tree).encode(), ExportLogsServiceRequest) == logs


def test_json_special_values() -> None:
    body = _traces(
        {
            "traceId": "01" * 16,
            "spanId": "02" * 8,
            "attributes": [
                {"key": "nan", "value": {"doubleValue": "NaN"}},
                {"key": "big", "value": {"intValue": 12.0}},
                {"key": "url", "value": {"bytesValue": "-_8"}},  # URL-safe base64, unpadded
            ],
            "kind": "SPAN_KIND_FROM_THE_FUTURE",
        }
    )
    span = otlp_json.decode(body, ExportTraceServiceRequest).resource_spans[0].scope_spans[0].spans[0]  # type: ignore[attr-defined]
    attrs = {a.key: a.value for a in span.attributes}
    assert math.isnan(attrs["nan"].double_value)
    assert attrs["big"].int_value == 12
    assert attrs["url"].bytes_value == base64.urlsafe_b64decode("-_8=")
    assert span.kind == 0  # an unknown enum name is ignored like an unknown field


@pytest.mark.parametrize(
    "value",
    [
        {"intValue": "12a"},
        {"intValue": 1.5},
        {"boolValue": "true"},
        {"bytesValue": "!!"},
        {"intValue": str(2**64)},
    ],
)
def test_wrong_json_types_are_decode_errors(value: dict[str, object]) -> None:
    body = _traces({"traceId": "01" * 16, "spanId": "02" * 8, "attributes": [{"key": "k", "value": value}]})
    with pytest.raises(DecodeError):
        otlp_json.decode(body, ExportTraceServiceRequest)


@pytest.mark.parametrize("depth", [300, 20_000])
def test_deep_nesting_is_a_decode_error(depth: int) -> None:
    """Too deep for the walk (300) or for the JSON parser itself (20,000): a bad request, not a crash."""
    nested = '{"kvlistValue":{"values":[{"key":"k","value":' * depth + "{}" + "}]}}" * depth
    span = '{"traceId":"' + "01" * 16 + '","spanId":"' + "02" * 8 + '","attributes":[{"key":"a","value":'
    body = ('{"resourceSpans":[{"scopeSpans":[{"spans":[' + span + nested + "}]}]}]}]}").encode()
    with pytest.raises(DecodeError, match="nested too deeply"):
        otlp_json.decode(body, ExportTraceServiceRequest)
