"""Heuristics on what the model answered: empty, refused, cut off, broken JSON."""

from __future__ import annotations

import json

from spanline.scorer.config import HeuristicSettings
from spanline.scorer.heuristics.base import Heuristic, Result, flag
from spanline.scorer.heuristics.content import final_output, llm_spans, output_text
from spanline.scorer.trace import CompletedTrace, SpanView

_TRUNCATION_REASONS = frozenset({"length", "max_tokens", "max_output_tokens", "model_length"})
# where instrumentations say JSON was asked for (GenAI semconv, OpenAI-style response_format)
_JSON_REQUEST_KEYS = ("gen_ai.output.type", "gen_ai.openai.request.response_format", "llm.response_format")
_INVOCATION_KEYS = ("llm.invocation_parameters", "gen_ai.request.response_format")


def _empty(trace: CompletedTrace, cfg: HeuristicSettings) -> Result | None:
    found = final_output(trace)
    if found is None:
        span = max(llm_spans(trace), key=lambda s: s.end_ns, default=None)
        if span is not None and span.output_tokens == 0:
            return flag(True, "final LLM call produced 0 output tokens")
        return None
    _, text, tool = found
    return flag(not tool and not text.strip(), "" if tool or text.strip() else "final output is empty")


def _refusal(trace: CompletedTrace, cfg: HeuristicSettings) -> Result | None:
    found = final_output(trace)
    if found is None:
        return None
    text = found[1].lower()
    hit = any(p.lower() in text for p in cfg.refusal_phrases if p)
    return flag(hit, "final output matches a refusal phrase" if hit else "")


def _truncated(trace: CompletedTrace, cfg: HeuristicSettings) -> Result | None:
    spans = [s for s in llm_spans(trace) if s.finish_reasons]
    if not spans:
        return None
    cut = sum(1 for s in spans if _TRUNCATION_REASONS.intersection(r.lower() for r in s.finish_reasons))
    return flag(cut > 0, f"{cut} LLM call(s) stopped at the token limit" if cut else "")


def json_requested(span: SpanView) -> bool:
    for key in _JSON_REQUEST_KEYS:
        value = span.attributes.get(key, "").lower()
        if "json" in value:
            return True
    for key in _INVOCATION_KEYS:
        value = span.attributes.get(key, "")
        if "json_object" in value or "json_schema" in value:
            return True
    return False


def _invalid_json(trace: CompletedTrace, cfg: HeuristicSettings) -> Result | None:
    checked = invalid = 0
    for s in llm_spans(trace):
        if not s.output_messages or not json_requested(s):
            continue
        text, tool = output_text(s.output_messages)
        if tool and not text.strip():
            continue
        checked += 1
        try:
            json.loads(text)
        except ValueError:
            invalid += 1
    if not checked:
        return None
    return flag(invalid > 0, f"{invalid} of {checked} JSON answer(s) do not parse" if invalid else "")


HEURISTICS = (
    Heuristic("empty_output", "1", _empty),
    Heuristic("refusal", "1", _refusal),
    Heuristic("truncated", "1", _truncated),
    Heuristic("invalid_json", "1", _invalid_json),
)
