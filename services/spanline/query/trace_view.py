"""One trace, read back: span tree with timings, model, tokens, cost, status and scores.

Rows are read with FINAL so a replayed span shows once; payload references (claim check)
are inlined for ``--json`` so machines get the original text byte for byte.

Scores are shown at two levels. The scorer attaches a trace-level score to the root span
(or, for a rootless trace or a late fragment, to its lowest span id) and records how the
trace window was closed; a score with that record, with no span, or on a root span is a
trace score. Any other score (an SDK's own per-span evaluation, say) is listed under its
span. The facts a reader needs to weigh a score (evaluator version, close reason, late
fragment, judge weight and inclusion probability, stratum, error type) live in the score's
attributes under the names ``spanline.scorer.scores`` writes; they are lifted into columns
here so nobody has to read the attribute map.
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
    "sampling_reason, sampling_weight, toUnixTimestamp64Nano(time) AS time_ns, attributes"
)
# attribute names written by the scorer (spanline.scorer.scores, spanline.scorer.judging.records);
# spelled out here so reading a trace does not import the scorer
_A_VERSION = "spanline.evaluation.version"
_A_CLOSE_REASON = "spanline.trace.completion_reason"
_A_LATE_FRAGMENT = "spanline.trace.late_fragment"
_A_ERROR_TYPE = "error.type"
_A_PROBABILITY = "spanline.sampling.probability"
_A_STRATUM = "spanline.sampling.stratum"
_KIND_ORDER = {"heuristic": 0, "llm_judge": 1, "sampling": 2}


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
    return TraceView(tid, spans, annotate_scores(spans, scores))


def _attr_map(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list | tuple):  # some clients return a Map as key/value pairs
        return {str(k): str(v) for k, v in value}
    return {}


def _float_or_none(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def annotate_scores(spans: list[dict[str, Any]], scores: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each score with its level (``trace``/``span``), span name and the weighing facts
    from its attributes as fields; trace scores first, then by kind and name."""
    by_id = {s["span_id"]: s for s in spans}
    out = []
    for raw in scores:
        sc = dict(raw)
        attrs = _attr_map(sc.get("attributes"))
        sc["attributes"] = attrs
        span = by_id.get(sc["span_id"])
        trace_level = (
            not sc["span_id"] or _A_CLOSE_REASON in attrs or (span is not None and not span["parent_span_id"])
        )
        sc["level"] = "trace" if trace_level else "span"
        sc["span_name"] = span["name"] if span is not None else None
        sc["evaluator_version"] = attrs.get(_A_VERSION, "")
        sc["close_reason"] = attrs.get(_A_CLOSE_REASON, "")
        sc["late_fragment"] = attrs.get(_A_LATE_FRAGMENT) == "true"
        sc["error_type"] = attrs.get(_A_ERROR_TYPE, "")
        sc["inclusion_probability"] = _float_or_none(attrs.get(_A_PROBABILITY))
        sc["stratum"] = attrs.get(_A_STRATUM, "")
        sc["sampling_weight"] = float(sc.get("sampling_weight") or 0.0)
        sc["score_value"] = float(sc["score_value"])
        out.append(sc)
    out.sort(key=_score_order)
    return out


def _score_order(sc: dict[str, Any]) -> tuple[Any, ...]:
    where = ("", "") if sc["level"] == "trace" else (sc["span_name"] or "", sc["span_id"])
    return (
        sc["level"] != "trace",
        *where,
        _KIND_ORDER.get(sc["evaluator_kind"], 3),
        sc["name"],
        sc["score_id"],
    )


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
    trace_scores = [sc for sc in view.scores if sc.get("level", "trace") == "trace"]
    span_scores = [sc for sc in view.scores if sc.get("level", "trace") == "span"]
    if trace_scores:
        parts += ["", "trace scores", _score_table(trace_scores, with_span=False)]
    if span_scores:
        parts += ["", "span scores", _score_table(span_scores, with_span=True)]
    return "\n".join(parts)


def _value(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.6g}"


def _weight(sc: dict[str, Any]) -> str:
    """Judge weight 1/p with p; blank for scores that are not sampled (heuristics)."""
    w = float(sc.get("sampling_weight") or 0.0)
    if w <= 0:
        return ""
    p = sc.get("inclusion_probability")
    return f"{w:.4g} (p={p:.4g})" if p is not None else f"{w:.4g}"


def _score_table(scores: list[dict[str, Any]], *, with_span: bool) -> str:
    rows = []
    for sc in scores:
        label = sc["score_label"]
        if sc.get("error_type"):
            label = f"error: {sc['error_type']}"
        closed = sc.get("close_reason", "")
        if sc.get("late_fragment"):
            closed = (closed + " " if closed else "") + "(late fragment)"
        note = sc["explanation"] or (f"stratum {sc['stratum']}" if sc.get("stratum") else "")
        row = [
            sc["name"],
            sc.get("evaluator_version", ""),
            sc["evaluator_kind"],
            _value(float(sc["score_value"])),
            label,
            closed,
            _weight(sc),
            clip(note, 60),
        ]
        if with_span:
            row.insert(0, clip(sc.get("span_name") or sc["span_id"] or "?", 32))
        rows.append(row)
    columns = ["evaluator", "version", "kind", "value", "label", "closed", "judge weight", "explanation"]
    numeric = [False, False, False, True, False, False, True, False]
    if with_span:
        columns.insert(0, "span")
        numeric.insert(0, False)
    return render_table(columns, rows, numeric=numeric)


def trace_json(view: TraceView, store: ObjectStore | None) -> dict[str, Any]:
    """Machine form: flat spans in start order (with depth), payloads inlined, and scores
    (each with ``level``, ``span_name`` and the weighing facts lifted from its attributes)."""
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
