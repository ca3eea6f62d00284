"""Small CompletedTrace values for judge tests (the scorer's own view of a trace)."""

from __future__ import annotations

import json
from typing import Any

from spanline.scorer.trace import CompletedTrace, SpanView


def span(
    name: str, span_id: int, parent: int = 0, *, status: str = "UNSET", duration_ms: float = 100.0, **kw: Any
) -> SpanView:
    start = 1_760_000_000_000_000_000 + span_id * 1_000_000
    dur = int(duration_ms * 1e6)
    return SpanView(
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=parent.to_bytes(8, "big") if parent else b"",
        name=name,
        kind="INTERNAL",
        start_ns=start,
        end_ns=start + dur,
        duration_ns=dur,
        status_code=status,
        status_message=kw.pop("status_message", ""),
        **kw,
    )


def chat_trace(
    n: int,
    *,
    project: str = "p1",
    question: str = "Where is my order 1234?",
    answer: str = "Your order 1234 shipped yesterday and arrives Friday.",
    route: str = "support.chat",
    model: str = "gpt-4o-mini",
    environment: str = "prod",
    error: bool = False,
    latency_ms: float = 800.0,
    scores: dict[str, float] | None = None,
    late: bool = False,
) -> CompletedTrace:
    root = span(route, 1, duration_ms=latency_ms, status="ERROR" if error else "OK")
    llm = span(
        "chat " + model,
        2,
        1,
        operation="chat",
        request_model=model,
        response_model=model,
        input_tokens=40,
        output_tokens=20,
        input_messages=json.dumps([{"role": "user", "parts": [{"type": "text", "content": question}]}]),
        output_messages=json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]),
    )
    tool = span(
        "execute_tool lookup_order",
        3,
        1,
        operation="execute_tool",
        tool_name="lookup_order",
        tool_arguments=json.dumps({"order": "1234"}),
        tool_result=json.dumps({"status": "shipped", "eta": "Friday"}),
    )
    base = {"error": 1.0 if error else 0.0, "latency_ms": latency_ms}
    base.update(scores or {})
    return CompletedTrace(
        project_id=project,
        trace_id=n.to_bytes(16, "big"),
        spans=[root, llm, tool],
        logs=[],
        root=root,
        route=route,
        model=model,
        environment=environment,
        close_reason="complete",
        late_fragment=late,
        scores=base,
    )
