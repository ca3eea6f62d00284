"""Reading message payloads (the span model's JSON text) for output-side heuristics.

Payloads are read when a span arrives (:mod:`spanline.scorer.facts`), and only the
verdicts are kept; :func:`final_llm_span` then picks the span whose verdict counts.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spanline.scorer.facts import SpanFacts, TraceFacts

LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
_TEXT_KEYS = ("content", "text", "value")
_TOOL_PART_TYPES = frozenset({"tool_call", "function_call", "tool_use"})


def final_llm_span(trace: TraceFacts) -> SpanFacts | None:
    """The LLM call whose answer ended the trace (latest end time)."""
    spans = trace.llm_spans
    return max(spans, key=lambda s: (s.end_ns, s.span_id)) if spans else None


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def output_text(payload: str) -> tuple[str, bool]:
    """(the text parts of an output payload, whether it holds a tool call).

    Understands the GenAI semconv shape (messages with ``parts``) and the reassembled
    OpenInference/OpenLLMetry message lists the span model produces; plain text is itself.
    """
    texts: list[str] = []
    tool = False

    def walk(node: Any) -> None:
        nonlocal tool
        if isinstance(node, str):
            texts.append(node)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind in _TOOL_PART_TYPES or "tool_calls" in node or "function_call" in node:
                tool = True
            if "parts" in node:
                walk(node["parts"])
                return
            if "message" in node and isinstance(node["message"], dict):
                walk(node["message"])
                return
            for key in _TEXT_KEYS:
                value = node.get(key)
                if isinstance(value, str | list):
                    walk(value)
                    break

    walk(parse_json(payload))
    return "".join(texts), tool


def final_output(trace: TraceFacts) -> SpanFacts | None:
    """The final LLM span when it captured output content (content capture is often off);
    its ``output_empty`` / ``output_refusal`` are then set."""
    span = final_llm_span(trace)
    if span is None or span.output_empty is None:
        return None
    return span
