"""Small OTLP builders for the writer's chdb tests."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

from spanline.loadgen.otlp_values import key_value

# recent: older rows would fall out of the hot window (TTL DELETE) as soon as they are written
T0 = (time.time_ns() // 10**9 - 3600) * 10**9


def set_attr(attrs: Any, key: str, value: object) -> None:
    attrs.append(key_value(key, value))


def traces(
    trace_id: bytes,
    spans: list[dict[str, Any]],
    *,
    service: str = "app",
    t0: int = T0,
) -> TracesData:
    """spans: dicts with span_id (int), parent (int|None), name, start_ms, dur_ms, attrs, status."""
    td = TracesData()
    rs = td.resource_spans.add()
    set_attr(rs.resource.attributes, "service.name", service)
    ss = rs.scope_spans.add()
    ss.scope.name = "tests"
    for spec in spans:
        span = ss.spans.add()
        span.trace_id = trace_id
        span.span_id = int(spec["span_id"]).to_bytes(8, "big")
        if spec.get("parent"):
            span.parent_span_id = int(spec["parent"]).to_bytes(8, "big")
        span.name = spec.get("name", "op")
        span.kind = Span.SPAN_KIND_INTERNAL
        span.start_time_unix_nano = t0 + int(spec.get("start_ms", 0) * 1e6)
        span.end_time_unix_nano = span.start_time_unix_nano + int(spec.get("dur_ms", 1) * 1e6)
        span.status.code = spec.get("status", 0)
        for key, value in spec.get("attrs", {}).items():
            set_attr(span.attributes, key, value)
    return td
