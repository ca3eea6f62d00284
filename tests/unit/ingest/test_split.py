"""The wire-level splitter must produce exactly what a protobuf copy would."""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

from spanline.ingest.limits import Limits
from spanline.ingest.split import split_logs, split_traces
from spanline.loadgen.genai_traces import build_requests

LIMITS = Limits(max_attributes=128, max_value_bytes=1 << 20, max_items=10_000)


def _spans(data: TracesData) -> list[tuple[str, str, str, bytes]]:
    out = []
    for rs in data.resource_spans:
        svc = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "")
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append((svc, ss.scope.name, rs.schema_url + ss.schema_url, s.SerializeToString()))
    return out


def test_every_span_once_grouped_by_trace_with_resource_and_scope() -> None:
    for request in build_requests(400, 100, seed=3):
        request.resource_spans[0].schema_url = "https://opentelemetry.io/schemas/1.30.0"
        result = split_traces(request, LIMITS, 16 << 20)
        expected = sorted(_spans(TracesData(resource_spans=request.resource_spans)))
        got = []
        for key, value, count in result.pieces:
            data = TracesData.FromString(value)
            spans = _spans(data)
            assert len(spans) == count
            assert {Span.FromString(s[3]).trace_id for s in spans} == {key}
            got.extend(spans)
        assert sorted(got) == expected
        assert result.accepted == len(expected) and result.rejected.total == 0


def test_oversized_trace_is_cut_into_chunks_with_same_key() -> None:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(10):
        s = ss.spans.add(trace_id=b"\x01" * 16, span_id=(i + 1).to_bytes(8, "big"))
        s.attributes.append(KeyValue(key="x", value=AnyValue(string_value="a" * 1000)))
    result = split_traces(req, LIMITS, 3500)
    assert len(result.pieces) >= 3
    assert all(len(v) <= 3500 for _, v, _ in result.pieces)
    assert sum(c for _, _, c in result.pieces) == 10
    # one span larger than a record is rejected, not dropped silently
    big = split_traces(req, LIMITS, 500)
    assert big.accepted == 0 and big.rejected.by_reason == {"too_large": 10}


def test_logs_keyed_by_trace_or_project() -> None:
    req = ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    sl.log_records.append(LogRecord(trace_id=b"\x02" * 16, body=AnyValue(string_value="a")))
    sl.log_records.append(LogRecord(body=AnyValue(string_value="b")))
    sl.log_records.append(LogRecord(trace_id=b"\x02" * 15))
    result = split_logs(req, LIMITS, 1 << 20, b"proj")
    assert sorted(k for k, _, _ in result.pieces) == [b"\x02" * 16, b"proj"]
    assert result.rejected.by_reason == {"invalid_trace_id": 1}
    for _, value, _ in result.pieces:
        assert len(LogsData.FromString(value).resource_logs[0].scope_logs[0].log_records) == 1


def test_empty_resource_and_scope_are_valid() -> None:
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add().spans.add(trace_id=b"\x05" * 16, span_id=b"\x06" * 8)
    (piece,) = split_traces(req, LIMITS, 1 << 20).pieces
    data = TracesData.FromString(piece[1])
    assert data.resource_spans[0].scope_spans[0].spans[0].span_id == b"\x06" * 8
