"""What an open trace holds: per span, the few facts the heuristics read (no payloads).

Messages are read once, on arrival, through the span model's row builder (the compiled
one when it is built), one builder pass per consumed batch: tokens, cost, model and
status are the values the writer stores for the span. From the batch's Arrow table only
the columns the heuristics need become Python values; payload text is read only for
model-call spans and reduced at once to what the output heuristics decide (empty,
refusal, JSON validity), and attribute maps only for the handful of keys the heuristics
look up. A window then holds ~0.3 KB per span instead of the message bytes, and the
byte bounds count that (:data:`SPAN_FACTS_BYTES`).

The judge needs content: it reads the held raw messages, which are kept only when it is
enabled (:mod:`spanline.scorer.service`).
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spanline.scorer.config import HeuristicSettings
from spanline.scorer.heuristics.content import LLM_OPERATIONS, output_text
from spanline.scorer.heuristics.feedback import (
    EVENT_LABEL_KEYS,
    EVENT_SCORE_KEYS,
    FEEDBACK_EVENTS,
    LABEL_KEYS,
    SCORE_KEYS,
    feedback_value,
)
from spanline.scorer.trace import CloseReason, closed_by_rule, score_span_id
from spanline.spans.object_store import REF_PREFIX
from spanline.spans.pricing import PricingTable
from spanline.spans.rows import SpanRows

ENVIRONMENT_KEYS = ("deployment.environment.name", "deployment.environment")
# where instrumentations say JSON was asked for (GenAI semconv, OpenAI-style response_format)
JSON_REQUEST_KEYS = ("gen_ai.output.type", "gen_ai.openai.request.response_format", "llm.response_format")
INVOCATION_KEYS = ("llm.invocation_parameters", "gen_ai.request.response_format")
_MODEL_OPERATIONS = LLM_OPERATIONS | {""}  # the trace's model: first call typed as one, or untyped
_TRUNCATION_REASONS = frozenset({"length", "max_tokens", "max_output_tokens", "model_length"})
_ATTRIBUTE_KEYS = SCORE_KEYS + LABEL_KEYS + JSON_REQUEST_KEYS + INVOCATION_KEYS + ENVIRONMENT_KEYS

SPAN_FACTS_BYTES = 330
"""Bytes counted per held span (the object, its ints and list slot; measured with tracemalloc
on loadgen traces, ids and short strings included)."""

# SpanFacts.finish
FINISH_NONE, FINISH_OTHER, FINISH_TRUNCATED = 0, 1, 2
# SpanFacts.json_answer
JSON_NOT_CHECKED, JSON_VALID, JSON_INVALID = 0, 1, 2

_NO_FEEDBACK: tuple[tuple[int, float], ...] = ()


@dataclass(slots=True)
class SpanFacts:
    """One span as the heuristics need it. Strings that repeat across spans (names,
    operations, models) are shared objects within a batch."""

    span_id: bytes
    is_root: bool  # no parent span
    name: str
    start_ns: int
    end_ns: int
    duration_ns: int  # as stored; only a root's is read (0 for the others: one object less)
    status_code: str  # UNSET | OK | ERROR
    operation: str
    model: str  # response model, else request model
    environment: str
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    ttft_ms: float | None
    is_tool: bool  # execute_tool or a tool name
    finish: int  # FINISH_*
    # the output heuristics' reading of this span's answer (model calls only): None when
    # no output content was captured (or it was offloaded), or when the span cannot be its
    # trace's final call (another call of the same message ends later)
    output_empty: bool | None = None
    output_refusal: bool = False
    json_answer: int = JSON_NOT_CHECKED
    feedback: tuple[tuple[int, float], ...] = _NO_FEEDBACK  # (time, 0..1) found on the span

    @property
    def is_llm(self) -> bool:
        return self.operation in LLM_OPERATIONS


@dataclass(slots=True)
class TraceFacts:
    """A closed trace as the heuristics and the sampling decision see it."""

    project_id: str
    trace_id: bytes
    spans: list[SpanFacts]  # by (start, span id)
    llm_spans: list[SpanFacts]  # the model calls among them (chat, text_completion, generate_content)
    feedback_logs: Sequence[tuple[int, float]]  # (time, 0..1) from log events of the trace
    root: SpanFacts | None
    route: str
    model: str
    environment: str
    close_reason: CloseReason
    late_fragment: bool = False
    scores: dict[str, float] = field(default_factory=dict)
    partition: int = 0
    size_bytes: int = 0

    @classmethod
    def of(
        cls,
        project_id: str,
        trace_id: bytes,
        spans: list[SpanFacts],
        feedback_logs: Sequence[tuple[int, float]],
        close_reason: CloseReason,
        *,
        late_fragment: bool = False,
        partition: int = 0,
        size_bytes: int = 0,
    ) -> TraceFacts:
        spans.sort(key=lambda s: (s.start_ns, s.span_id))
        root = next((s for s in spans if s.is_root), None)
        model = next((s.model for s in spans if s.model and s.operation in _MODEL_OPERATIONS), "")
        environment = next((s.environment for s in spans if s.environment), "")
        return cls(
            project_id=project_id,
            trace_id=trace_id,
            spans=spans,
            llm_spans=[s for s in spans if s.operation in LLM_OPERATIONS],
            feedback_logs=feedback_logs,
            root=root,
            route=root.name if root is not None else "",
            model=model,
            environment=environment,
            close_reason=close_reason,
            late_fragment=late_fragment,
            partition=partition,
            size_bytes=size_bytes,
        )

    @property
    def complete(self) -> bool:
        return closed_by_rule(self.close_reason)

    @property
    def score_span_id(self) -> bytes:
        return score_span_id(
            self.root.span_id if self.root is not None else None, (s.span_id for s in self.spans)
        )


def log_feedback(event_name: str, attributes: Mapping[str, str]) -> float | None:
    """The feedback a log event carries (0..1), or None (docs/scoring.md convention)."""
    if event_name in FEEDBACK_EVENTS or any(k in attributes for k in SCORE_KEYS[:1] + LABEL_KEYS[:1]):
        return feedback_value(attributes, EVENT_SCORE_KEYS + SCORE_KEYS, EVENT_LABEL_KEYS + LABEL_KEYS)
    return None


def _event_feedback(events: str, end_ns: int) -> tuple[tuple[int, float], ...]:
    try:
        parsed = json.loads(events)
    except ValueError:
        return ()
    found: list[tuple[int, float]] = []
    for ev in parsed if isinstance(parsed, list) else []:
        if isinstance(ev, dict) and ev.get("name") in FEEDBACK_EVENTS:
            attrs = ev.get("attributes") or {}
            value = feedback_value(attrs, EVENT_SCORE_KEYS + SCORE_KEYS, EVENT_LABEL_KEYS + LABEL_KEYS)
            if value is not None:
                found.append((int(ev.get("time_unix_nano") or end_ns), value))
    return tuple(found)


def json_requested(attributes: Mapping[str, str]) -> bool:
    for key in JSON_REQUEST_KEYS:
        if "json" in attributes.get(key, "").lower():
            return True
    for key in INVOCATION_KEYS:
        value = attributes.get(key, "")
        if "json_object" in value or "json_schema" in value:
            return True
    return False


def _json_answer(text: str, tool: bool) -> int:
    if tool and not text.strip():
        return JSON_NOT_CHECKED
    try:
        json.loads(text)
    except ValueError:
        return JSON_INVALID
    return JSON_VALID


def _picked_entries(column: pa.ChunkedArray, wanted: pa.Array) -> dict[int, dict[str, str]]:
    """Per row index: the entries of a map column whose key is in ``wanted`` (rows without
    any are absent). Only those entries become Python strings."""
    out: dict[int, dict[str, str]] = {}
    offset = 0
    for chunk in column.chunks:
        hits = np.flatnonzero(pc.is_in(chunk.keys, value_set=wanted).to_numpy(zero_copy_only=False))
        if len(hits):
            offsets = chunk.offsets.to_numpy()
            rows = np.searchsorted(offsets, hits, side="right") - 1
            keys = chunk.keys.take(pa.array(hits)).to_pylist()
            values = chunk.items.take(pa.array(hits)).to_pylist()
            for row, key, value in zip(rows.tolist(), keys, values, strict=True):
                out.setdefault(offset + row, {})[key] = value
        offset += len(chunk)
    return out


def _rows_where(mask: pa.ChunkedArray) -> list[int]:
    """Row indexes where a boolean column is true (null counts as false)."""
    return np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False)).tolist()  # type: ignore[no-any-return]


def _cells(column: pa.ChunkedArray, rows: list[int]) -> list[Any]:
    """Python values of some rows of a column (one conversion, not one per scalar)."""
    return column.take(pa.array(rows, pa.int64())).to_pylist() if rows else []


def _strings(column: pa.ChunkedArray) -> list[Any]:
    """A low-cardinality string column as Python values, one object per distinct value."""
    encoded = pc.dictionary_encode(column).combine_chunks()
    words = encoded.dictionary.to_pylist()
    return [words[i] if i is not None else None for i in encoded.indices.to_pylist()]


def span_facts(
    table: pa.Table,
    settings_for: Callable[[str], HeuristicSettings],
    message_rows: Sequence[int] | None = None,
) -> tuple[list[str], list[SpanFacts]]:
    """(trace id hex, facts) per row of a ``spans`` table built by the span model.

    ``message_rows``: rows per message, in order (None: one message). Of the model calls of
    one trace in one message, only the latest-ending can end the trace, so only its answer
    is read for ``output_empty``/``output_refusal`` (the others keep None); answers to JSON
    requests are all checked.
    """
    n = table.num_rows
    if not n:
        return [], []
    col = table.column
    trace_hex = _strings(col("trace_id"))
    fromhex = bytes.fromhex
    span_ids = [fromhex(h) for h in col("span_id").to_pylist()]
    roots = [not h for h in col("parent_span_id").to_pylist()]
    names = _strings(col("name"))
    status = _strings(col("status_code"))
    operation = _strings(col("operation"))
    provider_model = _strings(col("response_model"))
    request_model = _strings(col("request_model"))
    tool_name = col("tool_name").to_pylist()
    start = col("start_time").cast(pa.int64()).to_pylist()
    end = col("end_time").cast(pa.int64()).to_pylist()
    duration = col("duration_ns").to_pylist()
    in_tokens = col("input_tokens").to_pylist()
    out_tokens = col("output_tokens").to_pylist()
    cost = col("cost_usd").to_pylist()
    ttft = col("ttft_ms").to_pylist()

    finish = [FINISH_NONE] * n
    reasons = col("finish_reasons")
    listed_rows = _rows_where(pc.greater(pc.list_value_length(reasons), 0))
    for i, listed in zip(listed_rows, _cells(reasons, listed_rows), strict=True):
        truncated = _TRUNCATION_REASONS.intersection(r.lower() for r in listed)
        finish[i] = FINISH_TRUNCATED if truncated else FINISH_OTHER

    wanted = pa.array(_ATTRIBUTE_KEYS, pa.string())
    attrs = _picked_entries(col("attributes"), wanted)
    res = _picked_entries(col("resource_attributes"), pa.array(ENVIRONMENT_KEYS, pa.string()))

    # answers of model calls: read only those payload cells
    llm_rows = [i for i, op in enumerate(operation) if op in LLM_OPERATIONS]
    ends = list(accumulate(message_rows)) if message_rows else [n]
    last_call: dict[tuple[int, str], int] = {}  # (message, trace) -> its latest-ending call
    for i in llm_rows:
        where = (bisect_right(ends, i), trace_hex[i])
        j = last_call.get(where)
        if j is None or ((end[i] or 0), span_ids[i]) > ((end[j] or 0), span_ids[j]):
            last_call[where] = i
    may_end = set(last_call.values())
    llm_rows = [i for i in llm_rows if i in may_end or (i in attrs and json_requested(attrs[i]))]
    answers: dict[int, tuple[bool | None, bool, int]] = {}
    if llm_rows:
        outputs = _cells(col("output_messages"), llm_rows)
        projects = _strings(col("project_id").take(pa.array(llm_rows, pa.int64())))
        phrases: dict[str, list[str]] = {}
        for i, payload, project in zip(llm_rows, outputs, projects, strict=True):
            if not payload:
                continue
            text, tool = output_text(payload)
            captured = i in may_end and not payload.startswith(REF_PREFIX)
            empty: bool | None = None
            refusal = False
            if captured:
                empty = not tool and not text.strip()
                if project not in phrases:
                    phrases[project] = [p.lower() for p in settings_for(project).refusal_phrases if p]
                lowered = text.lower()
                refusal = any(p in lowered for p in phrases[project])
            span_attrs = attrs.get(i)
            checked = _json_answer(text, tool) if span_attrs and json_requested(span_attrs) else 0
            answers[i] = (empty, refusal, checked)

    events = col("events")
    with_feedback = _rows_where(pc.match_substring(events, "feedback"))
    event_feedback = dict(zip(with_feedback, _cells(events, with_feedback), strict=True))

    out: list[SpanFacts] = []
    environments: dict[str, str] = {}
    no_answer: tuple[bool | None, bool, int] = (None, False, JSON_NOT_CHECKED)
    empty_map: dict[str, str] = {}
    for i in range(n):
        span_attrs = attrs.get(i, empty_map)
        span_res = res.get(i, empty_map)
        environment = ""
        if span_res or span_attrs:
            for k in ENVIRONMENT_KEYS:
                environment = span_res.get(k, "") or span_attrs.get(k, "")
                if environment:
                    # held with the span: one string object per distinct value (~250 B a trace)
                    environment = environments.setdefault(environment, environment)
                    break
        feedback: tuple[tuple[int, float], ...] = _NO_FEEDBACK
        end_ns = end[i] or 0
        if span_attrs:
            value = feedback_value(span_attrs, SCORE_KEYS, LABEL_KEYS)
            if value is not None:
                feedback = ((end_ns, value),)
        if i in event_feedback:
            feedback = feedback + _event_feedback(event_feedback[i], end_ns)
        op = operation[i]
        output_empty, output_refusal, json_answer = answers.get(i, no_answer)
        out.append(
            SpanFacts(  # positional (fields in order): a third cheaper than keywords here
                span_ids[i],
                roots[i],
                names[i],
                start[i] or 0,
                end_ns,
                (duration[i] or 0) if roots[i] else 0,
                status[i],
                op,
                provider_model[i] or request_model[i],
                environment,
                in_tokens[i],
                out_tokens[i],
                cost[i],
                ttft[i],
                op == "execute_tool" or bool(tool_name[i]),
                finish[i],
                output_empty,
                output_refusal,
                json_answer,
                feedback,
            )
        )
    return trace_hex, out


def facts_by_trace(
    trace_hex: Sequence[str], facts: Sequence[SpanFacts], start: int, count: int
) -> dict[str, list[SpanFacts]]:
    """The facts of rows ``start .. start+count`` (one message), grouped by trace id hex."""
    out: dict[str, list[SpanFacts]] = {}
    for i in range(start, start + count):
        out.setdefault(trace_hex[i], []).append(facts[i])
    return out


class FactsReader:
    """Span messages of one consumed batch -> their spans' facts, in one builder pass."""

    def __init__(
        self, pricing: PricingTable, builder: str, settings_for: Callable[[str], HeuristicSettings]
    ) -> None:
        self._rows = SpanRows(pricing, None, builder)
        self._settings_for = settings_for
        self._message_rows: list[int] = []

    @property
    def builder_name(self) -> str:
        return self._rows.builder_name

    def __len__(self) -> int:
        """Rows added and not taken yet."""
        return len(self._rows)

    def add(self, value: bytes, project_id: str, received_ns: int) -> int:
        """Rows the message adds; :class:`RowBuildError` when the span model refuses it (then
        nothing of it is added)."""
        added = self._rows.add_bytes(value, project_id, received_ns)
        self._message_rows.append(added)
        return added

    def take(self) -> tuple[list[str], list[SpanFacts]]:
        """(trace id hex, facts) of every row added since the last call, in order."""
        message_rows, self._message_rows = self._message_rows, []
        if not len(self._rows):
            return [], []
        return span_facts(self._rows.take(), self._settings_for, message_rows)
