"""One trace, read back: span tree with timings, model, tokens, cost, status and scores.

Rows are read with FINAL so a replayed span shows once; payload references (claim check)
are inlined for ``--json`` so machines get the original text byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from spanline.query.client import QueryBackend, QueryError
from spanline.query.formatting import clip, render_table
from spanline.spans.object_store import ObjectStore, inline_value

_TRACE_ID_RE = re.compile(r"^[0-9a-f]{32}$")
PAYLOAD_FIELDS = ("input_messages", "output_messages", "system_instructions", "tool_arguments", "tool_result")
_SPAN_COLUMNS = (
    "project_id, trace_id, span_id, parent_span_id, service_name, name, kind, "
    "toUnixTimestamp64Nano(start_time) AS start_ns, toUnixTimestamp64Nano(end_time) AS end_ns, duration_ns, "
    "status_code, status_message, operation, provider, request_model, response_model, "
    "input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, total_tokens, cost_usd, ttft_ms, "
    "finish_reasons, conversation_id, user_id, agent_name, tool_name, tool_call_id, "
    "input_messages, output_messages, system_instructions, tool_arguments, tool_result, "
    "attributes, resource_attributes, events, links"
)
_SCORE_COLUMNS = (
    "score_id, span_id, name, score_value, score_label, explanation, evaluator_kind, "
    "sampling_reason, sampling_weight, toUnixTimestamp64Nano(time) AS time_ns"
)


def normalize_trace_id(text: str) -> str:
    tid = text.strip().lower().replace("-", "")
    if tid.startswith("0x"):
        tid = tid[2:]
    if not _TRACE_ID_RE.match(tid):
        raise QueryError(f"not a trace id (32 hex characters): {text[:64]!r}")
    return tid


@dataclass
class TraceView:
    trace_id: str
    spans: list[dict[str, Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)

    @property
    def start_ns(self) -> int:
        return min((s["start_ns"] for s in self.spans), default=0)

    @property
    def end_ns(self) -> int:
        return max((s["end_ns"] for s in self.spans), default=0)


def fetch_trace(backend: QueryBackend, trace_id: str, *, project: str | None = None) -> TraceView:
    tid = normalize_trace_id(trace_id)
    db = backend.database
    where = f"trace_id = '{tid}'"
    if project is not None:
        if not re.match(r"^[A-Za-z0-9._:-]{1,128}$", project):
            raise QueryError("project id may only hold letters, digits and . _ : -")
        where += f" AND project_id = '{project}'"
    spans = backend.query(
        f"SELECT {_SPAN_COLUMNS} FROM {db}.spans WHERE {where} ORDER BY start_ns, span_id"
    ).records()
    scores = backend.query(
        f"SELECT {_SCORE_COLUMNS} FROM {db}.scores WHERE {where} ORDER BY time_ns, score_id"
    ).records()
    for s in spans:
        for key in ("start_ns", "end_ns", "duration_ns"):
            s[key] = int(s[key])
    return TraceView(tid, spans, scores)


def _tree_order(spans: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
    """Spans in depth-first order with their tree prefix; orphans (parent not stored) are roots."""
    ids = {s["span_id"] for s in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    roots = []
    for s in spans:
        parent = s["parent_span_id"]
        if parent and parent in ids and parent != s["span_id"]:
            children.setdefault(parent, []).append(s)
        else:
            roots.append(s)
    out: list[tuple[dict[str, Any], str]] = []
    seen: set[str] = set()

    def walk(span: dict[str, Any], lead: str, branch: str) -> None:
        if span["span_id"] in seen:  # a cycle in bad data must not hang the terminal
            return
        seen.add(span["span_id"])
        out.append((span, lead + branch))
        kids = children.get(span["span_id"], [])
        extension = "" if not branch else ("   " if branch == "└─ " else "│  ")
        for i, kid in enumerate(kids):
            walk(kid, lead + extension, "└─ " if i == len(kids) - 1 else "├─ ")

    for root in roots:
        walk(root, "", "")
    return out


def _ms(ns: int) -> str:
    ms = ns / 1e6
    if ms >= 10_000:
        return f"{ms / 1000:.1f}s"
    if ms >= 1000:
        return f"{ms / 1000:.2f}s"
    return f"{ms:.1f}ms" if ms < 100 else f"{ms:.0f}ms"


def _tokens(s: dict[str, Any]) -> str:
    i, o = s.get("input_tokens"), s.get("output_tokens")
    if i is None and o is None:
        return ""
    text = f"{i if i is not None else '?'}→{o if o is not None else '?'}"
    if s.get("cached_input_tokens"):
        text += f" ({s['cached_input_tokens']} cached)"
    return text


def _cost(value: Any) -> str:
    if value is None:
        return ""
    return f"${float(value):.4f}" if float(value) >= 0.0001 or float(value) == 0 else f"${float(value):.2e}"


def render_trace(view: TraceView, *, name_width: int = 48) -> str:
    if not view.spans:
        text = f"trace {view.trace_id}: no spans stored"
        if view.scores:
            text += f" ({len(view.scores)} scores)"
        return text
    t0 = view.start_ns
    costs = [float(s["cost_usd"]) for s in view.spans if s.get("cost_usd") is not None]
    errors = sum(1 for s in view.spans if s["status_code"] == "ERROR")
    header = (
        f"trace {view.trace_id}  project {view.spans[0]['project_id']}  "
        f"{len(view.spans)} span{'s' if len(view.spans) != 1 else ''}  {_ms(view.end_ns - t0)}"
    )
    if costs:
        header += f"  cost ${sum(costs):.4f}"
    if errors:
        header += f"  {errors} error{'s' if errors != 1 else ''}"
    rows = []
    for span, prefix in _tree_order(view.spans):
        label = span["name"]
        if span["service_name"] and span is view.spans[0]:
            label += f"  [{span['service_name']}]"
        model = span["response_model"] or span["request_model"]
        if model and span["provider"]:
            model = f"{span['provider']}/{model}"
        status = span["status_code"]
        if status == "ERROR" and span["status_message"]:
            status += ": " + clip(span["status_message"], 30)
        rows.append(
            [
                clip(prefix + label, name_width),
                "+" + _ms(span["start_ns"] - t0),
                _ms(span["duration_ns"]),
                clip(model, 36),
                _tokens(span),
                _cost(span.get("cost_usd")),
                status,
            ]
        )
    table = render_table(
        ["span", "start", "duration", "model", "tokens in→out", "cost", "status"],
        rows,
        numeric=[False, True, True, False, False, True, False],
    )
    parts = [header, "", table]
    if view.scores:
        score_rows = [
            [
                sc["name"],
                f"{float(sc['score_value']):.4g}",
                sc["score_label"],
                sc["evaluator_kind"],
                sc["span_id"] or "(trace)",
                clip(sc["explanation"], 60),
            ]
            for sc in view.scores
        ]
        parts += [
            "",
            "scores",
            render_table(["name", "value", "label", "evaluator", "span", "explanation"], score_rows),
        ]
    return "\n".join(parts)


def trace_json(view: TraceView, store: ObjectStore | None) -> dict[str, Any]:
    """Machine form: flat spans in start order (with depth), payloads inlined, and scores."""
    from spanline.query.readonly import jsonable

    depth = {}
    for span, prefix in _tree_order(view.spans):
        depth[span["span_id"]] = len(prefix) // 3
    spans = []
    for s in view.spans:
        item = {k: jsonable(v) for k, v in s.items()}
        for key in PAYLOAD_FIELDS:
            item[key] = inline_value(store, item[key] or "")
        item["depth"] = depth.get(s["span_id"], 0)
        spans.append(item)
    return {
        "trace_id": view.trace_id,
        "start_unix_nano": view.start_ns,
        "duration_ns": view.end_ns - view.start_ns,
        "spans": spans,
        "scores": [{k: jsonable(v) for k, v in sc.items()} for sc in view.scores],
    }
