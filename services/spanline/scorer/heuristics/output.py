"""Heuristics on what the model answered: empty, refused, cut off, broken JSON.

Each span's answer was read on arrival (:func:`spanline.scorer.facts.span_facts`); these
decide which spans count and what the trace's score is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spanline.scorer.config import HeuristicSettings
from spanline.scorer.heuristics.base import Heuristic, Result, flag
from spanline.scorer.heuristics.content import final_output

if TYPE_CHECKING:
    from spanline.scorer.facts import TraceFacts

# SpanFacts.finish / json_answer values (spanline.scorer.facts, not imported: it imports us)
_FINISH_TRUNCATED = 2
_JSON_NOT_CHECKED, _JSON_INVALID = 0, 2


def _empty(trace: TraceFacts, cfg: HeuristicSettings) -> Result | None:
    found = final_output(trace)
    if found is None:
        span = max(trace.llm_spans, key=lambda s: s.end_ns, default=None)
        if span is not None and span.output_tokens == 0:
            return flag(True, "final LLM call produced 0 output tokens")
        return None
    empty = bool(found.output_empty)
    return flag(empty, "final output is empty" if empty else "")


def _refusal(trace: TraceFacts, cfg: HeuristicSettings) -> Result | None:
    found = final_output(trace)
    if found is None:
        return None
    hit = found.output_refusal
    return flag(hit, "final output matches a refusal phrase" if hit else "")


def _truncated(trace: TraceFacts, cfg: HeuristicSettings) -> Result | None:
    spans = [s for s in trace.llm_spans if s.finish]
    if not spans:
        return None
    cut = sum(1 for s in spans if s.finish == _FINISH_TRUNCATED)
    return flag(cut > 0, f"{cut} LLM call(s) stopped at the token limit" if cut else "")


def _invalid_json(trace: TraceFacts, cfg: HeuristicSettings) -> Result | None:
    checked = invalid = 0
    for s in trace.llm_spans:
        if s.json_answer == _JSON_NOT_CHECKED:
            continue
        checked += 1
        invalid += s.json_answer == _JSON_INVALID
    if not checked:
        return None
    return flag(invalid > 0, f"{invalid} of {checked} JSON answer(s) do not parse" if invalid else "")


HEURISTICS = (
    Heuristic("empty_output", "1", _empty),
    Heuristic("refusal", "1", _refusal),
    Heuristic("truncated", "1", _truncated),
    Heuristic("invalid_json", "1", _invalid_json),
)
