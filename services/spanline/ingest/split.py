"""Splitting an OTLP export into one Kafka record per trace (DESIGN.md: key = trace_id).

Resource and scope are kept on every piece, so each record is a self-contained OTLP
`TracesData`/`LogsData` exactly as the Collector's Kafka exporter would write it with
`partition_traces_by_id: true`. A trace too big for one record is cut into several
records with the same key; one span bigger than a record is rejected, never dropped
silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, LogsData, ResourceLogs, ScopeLogs
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, TracesData

from spanline.ingest.limits import Limits, Rejections, check_attributes, check_ids

# protobuf framing for a length-delimited field: tag byte + up to 5 length bytes.
_FRAME = 6


@dataclass(slots=True)
class SplitResult:
    """Serialized per-trace payloads ready to produce, plus what was rejected."""

    pieces: list[tuple[bytes, bytes, int]] = field(default_factory=list)  # (key, value, item count)
    accepted: int = 0
    rejected: Rejections = field(default_factory=Rejections)


class _Group:
    """Items of one key, grouped by (resource, scope) position, with a running size."""

    __slots__ = ("count", "items", "size")

    def __init__(self) -> None:
        self.items: dict[tuple[int, int], list[Span] | list[LogRecord]] = {}
        self.size = 0
        self.count = 0


def split_traces(request: ExportTraceServiceRequest, limits: Limits, max_record_bytes: int) -> SplitResult:
    result = SplitResult()
    groups: dict[bytes, list[_Group]] = {}
    envelope_sizes: list[int] = []
    for ri, rs in enumerate(request.resource_spans):
        envelope_sizes.append(rs.resource.ByteSize() + len(rs.schema_url) + 64)
        for si, ss in enumerate(rs.scope_spans):
            overhead = ss.scope.ByteSize() + len(ss.schema_url) + 2 * _FRAME
            for span in ss.spans:
                if result.accepted >= limits.max_items:
                    result.rejected.add("too_many_spans")
                    continue
                reason = check_ids(span.trace_id, span.span_id, span.parent_span_id) or check_attributes(
                    span, span.attributes, limits
                )
                if reason is not None:
                    result.rejected.add(reason)
                    continue
                size = span.ByteSize() + _FRAME
                if size + overhead + envelope_sizes[ri] > max_record_bytes:
                    result.rejected.add("too_large")
                    continue
                chunks = groups.setdefault(span.trace_id, [_Group()])
                group = chunks[-1]
                if group.count and group.size + size + overhead + envelope_sizes[ri] > max_record_bytes:
                    group = _Group()
                    chunks.append(group)
                bucket = group.items.get((ri, si))
                if bucket is None:
                    bucket = group.items[(ri, si)] = []
                    group.size += overhead + envelope_sizes[ri]
                bucket.append(span)  # type: ignore[arg-type]
                group.size += size
                group.count += 1
                result.accepted += 1
    for trace_id, chunks in groups.items():
        for group in chunks:
            result.pieces.append((trace_id, _build_traces(request, group).SerializeToString(), group.count))
    return result


def _build_traces(request: ExportTraceServiceRequest, group: _Group) -> TracesData:
    data = TracesData()
    by_resource: dict[int, ResourceSpans] = {}
    for (ri, si), spans in group.items.items():
        src_rs = request.resource_spans[ri]
        rs = by_resource.get(ri)
        if rs is None:
            rs = data.resource_spans.add()
            rs.resource.CopyFrom(src_rs.resource)
            rs.schema_url = src_rs.schema_url
            by_resource[ri] = rs
        src_ss = src_rs.scope_spans[si]
        ss: ScopeSpans = rs.scope_spans.add()
        ss.scope.CopyFrom(src_ss.scope)
        ss.schema_url = src_ss.schema_url
        ss.spans.extend(spans)  # type: ignore[arg-type]
    return data


def split_logs(
    request: ExportLogsServiceRequest, limits: Limits, max_record_bytes: int, project_key: bytes
) -> SplitResult:
    """Like :func:`split_traces`; records without a trace id are keyed by project."""
    result = SplitResult()
    groups: dict[bytes, list[_Group]] = {}
    for ri, rl in enumerate(request.resource_logs):
        envelope = rl.resource.ByteSize() + len(rl.schema_url) + 64
        for si, sl in enumerate(rl.scope_logs):
            overhead = sl.scope.ByteSize() + len(sl.schema_url) + 2 * _FRAME + envelope
            for record in sl.log_records:
                if result.accepted >= limits.max_items:
                    result.rejected.add("too_many_spans")
                    continue
                reason = _check_log_ids(record) or check_attributes(record, record.attributes, limits)
                if reason is None and record.body.ByteSize() > limits.max_value_bytes:
                    reason = "value_too_large"
                if reason is not None:
                    result.rejected.add(reason)
                    continue
                size = record.ByteSize() + _FRAME
                if size + overhead > max_record_bytes:
                    result.rejected.add("too_large")
                    continue
                key = record.trace_id or project_key
                chunks = groups.setdefault(key, [_Group()])
                group = chunks[-1]
                if group.count and group.size + size + overhead > max_record_bytes:
                    group = _Group()
                    chunks.append(group)
                bucket = group.items.get((ri, si))
                if bucket is None:
                    bucket = group.items[(ri, si)] = []
                    group.size += overhead
                bucket.append(record)  # type: ignore[arg-type]
                group.size += size
                group.count += 1
                result.accepted += 1
    for key, chunks in groups.items():
        for group in chunks:
            result.pieces.append((key, _build_logs(request, group).SerializeToString(), group.count))
    return result


def _check_log_ids(record: LogRecord) -> str | None:
    if record.trace_id and (len(record.trace_id) != 16 or record.trace_id == bytes(16)):
        return "invalid_trace_id"
    if record.span_id and len(record.span_id) != 8:
        return "invalid_span_id"
    return None


def _build_logs(request: ExportLogsServiceRequest, group: _Group) -> LogsData:
    data = LogsData()
    by_resource: dict[int, ResourceLogs] = {}
    for (ri, si), records in group.items.items():
        src_rl = request.resource_logs[ri]
        rl = by_resource.get(ri)
        if rl is None:
            rl = data.resource_logs.add()
            rl.resource.CopyFrom(src_rl.resource)
            rl.schema_url = src_rl.schema_url
            by_resource[ri] = rl
        src_sl = src_rl.scope_logs[si]
        sl: ScopeLogs = rl.scope_logs.add()
        sl.scope.CopyFrom(src_sl.scope)
        sl.schema_url = src_sl.schema_url
        sl.log_records.extend(records)  # type: ignore[arg-type]
    return data
