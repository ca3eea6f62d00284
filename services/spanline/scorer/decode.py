"""Closed windows -> :class:`CompletedTrace` views, through the span model's row builder.

All traces closed together are decoded in one builder pass (the compiled builder when it
is built), and only the columns the scorers read are turned into Python values, column
by column: per-attribute protobuf objects are never created on this path. Typed GenAI
fields, cost and the payload columns are exactly what the writer stores for the span.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from spanline.core.kafka import DlqEntry, DlqReason, InMessage
from spanline.scorer import metrics
from spanline.scorer.trace import CompletedTrace, LogView, SpanView
from spanline.scorer.windows import ClosedTrace
from spanline.spans.attributes import to_text
from spanline.spans.log_events import NotLogs, event_parts, event_time_ns, log_records
from spanline.spans.pricing import PricingTable
from spanline.spans.row_errors import RowBuildError
from spanline.spans.rows import SpanRows

log = logging.getLogger(__name__)

_ENVIRONMENT_KEYS = ("deployment.environment.name", "deployment.environment")
_LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", ""})

_INT_COLUMNS = ("start_time", "end_time")
_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "name", "kind", "start_time", "end_time", "duration_ns",
    "status_code", "status_message", "operation", "provider", "request_model", "response_model",
    "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "total_tokens",
    "cost_usd", "ttft_ms", "finish_reasons", "conversation_id", "user_id", "agent_name", "tool_name",
    "tool_call_id", "input_messages", "output_messages", "system_instructions", "tool_arguments",
    "tool_result", "attributes", "resource_attributes", "events",
)  # fmt: skip


class TraceDecoder:
    """Decodes the held messages of closed traces. One per strategy (the builder keeps its
    attribute-key table across calls)."""

    def __init__(self, pricing: PricingTable, builder: str = "auto") -> None:
        self._rows = SpanRows(pricing, None, builder)

    @property
    def builder_name(self) -> str:
        return self._rows.builder_name

    def decode(self, closed: Sequence[ClosedTrace]) -> tuple[list[CompletedTrace], list[DlqEntry]]:
        """The traces' views, and the held messages the span model refused (dead letters:
        the trace is scored on the rest)."""
        rows = self._rows
        rows.clear()
        dlq: list[DlqEntry] = []
        owners: list[int] = []  # per span row: index into `closed`
        for i, c in enumerate(closed):
            t = c.trace
            for msg in t.span_messages:
                try:
                    added = rows.add_bytes(msg.value, t.project_id, t.received_ns)
                except RowBuildError as exc:
                    # checked on arrival (it parsed, ids had their lengths): this is a span the
                    # model refuses for another reason (nested garbage, bad times)
                    metrics.UNDECODABLE.inc()
                    log.warning(
                        "held message not decodable; dead-lettered, trace scored without it",
                        extra={"partition": msg.partition, "offset": msg.offset},
                    )
                    dlq.append(DlqEntry(msg, DlqReason.PARSE_ERROR, str(exc)[:300]))
                    continue
                owners.extend([i] * added)
        spans: list[list[SpanView]] = [[] for _ in closed]
        if owners:
            for i, view, trace_hex in _span_views(rows.take()):
                trace = closed[owners[i]].trace
                # a message may (against the contract) carry several traces: keep this one's
                if trace_hex == trace.trace_id.hex():
                    spans[owners[i]].append(view)
        return [self._completed(c, s, dlq) for c, s in zip(closed, spans, strict=True)], dlq

    @staticmethod
    def _completed(c: ClosedTrace, spans: list[SpanView], dlq: list[DlqEntry]) -> CompletedTrace:
        t = c.trace
        spans.sort(key=lambda s: (s.start_ns, s.span_id))
        roots = [s for s in spans if s.is_root]
        root = roots[0] if roots else None
        model = ""
        for s in spans:
            if s.model and s.operation in _LLM_OPERATIONS:
                model = s.model
                break
        environment = ""
        for s in spans:
            for k in _ENVIRONMENT_KEYS:
                environment = s.resource_attributes.get(k, "") or s.attributes.get(k, "")
                if environment:
                    break
            if environment:
                break
        return CompletedTrace(
            project_id=t.project_id,
            trace_id=t.trace_id,
            spans=spans,
            logs=_log_views(t.log_messages, t.trace_id, dlq),
            root=root,
            route=root.name if root is not None else "",
            model=model,
            environment=environment,
            close_reason=c.reason,
            late_fragment=t.late_fragment,
            partition=t.partition[1],
            size_bytes=t.size,
        )


def _span_views(table: pa.Table) -> list[tuple[int, SpanView, str]]:
    cols: dict[str, list[Any]] = {}
    for name in _COLUMNS:
        col = table.column(name)
        if name in _INT_COLUMNS:
            col = col.cast(pa.int64())
        cols[name] = col.to_pylist()
    out = []
    fromhex = bytes.fromhex
    for i in range(table.num_rows):
        finish = cols["finish_reasons"][i]
        attrs = cols["attributes"][i]
        res = cols["resource_attributes"][i]
        view = SpanView(
            span_id=fromhex(cols["span_id"][i]),
            parent_span_id=fromhex(cols["parent_span_id"][i] or ""),
            name=cols["name"][i],
            kind=cols["kind"][i],
            start_ns=cols["start_time"][i] or 0,
            end_ns=cols["end_time"][i] or 0,
            duration_ns=cols["duration_ns"][i] or 0,
            status_code=cols["status_code"][i],
            status_message=cols["status_message"][i],
            operation=cols["operation"][i],
            provider=cols["provider"][i],
            request_model=cols["request_model"][i],
            response_model=cols["response_model"][i],
            input_tokens=cols["input_tokens"][i],
            output_tokens=cols["output_tokens"][i],
            cached_input_tokens=cols["cached_input_tokens"][i],
            reasoning_tokens=cols["reasoning_tokens"][i],
            total_tokens=cols["total_tokens"][i],
            cost_usd=cols["cost_usd"][i],
            ttft_ms=cols["ttft_ms"][i],
            finish_reasons=tuple(finish) if finish else (),
            conversation_id=cols["conversation_id"][i],
            user_id=cols["user_id"][i],
            agent_name=cols["agent_name"][i],
            tool_name=cols["tool_name"][i],
            tool_call_id=cols["tool_call_id"][i],
            input_messages=cols["input_messages"][i] or "",
            output_messages=cols["output_messages"][i] or "",
            system_instructions=cols["system_instructions"][i] or "",
            tool_arguments=cols["tool_arguments"][i] or "",
            tool_result=cols["tool_result"][i] or "",
            attributes=dict(attrs) if attrs else {},
            resource_attributes=dict(res) if res else {},
            events=cols["events"][i] or "",
        )
        out.append((i, view, cols["trace_id"][i]))
    return out


def _log_views(messages: Sequence[InMessage], trace_id: bytes, dlq: list[DlqEntry]) -> list[LogView]:
    out: list[LogView] = []
    for msg in messages:
        try:
            records = log_records(msg.value)
        except NotLogs as exc:
            # parsed on arrival, so this does not happen unless the bytes changed
            metrics.UNDECODABLE.inc()
            dlq.append(DlqEntry(msg, DlqReason.DECODE_ERROR, str(exc)))
            continue
        for rec in records:
            if rec.trace_id != trace_id:
                continue
            event_name, body, attrs = event_parts(rec)
            out.append(
                LogView(
                    span_id=rec.span_id,
                    time_ns=event_time_ns(rec),
                    event_name=event_name,
                    severity_text=rec.severity_text,
                    body=body,
                    attributes={k: to_text(v) for k, v in attrs.items()},
                )
            )
    out.sort(key=lambda r: r.time_ns)
    return out
