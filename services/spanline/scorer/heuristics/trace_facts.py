"""Heuristics on what every trace has: status, timing, tokens, cost, tool calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spanline.scorer.config import HeuristicSettings
from spanline.scorer.heuristics.base import Heuristic, Result, flag
from spanline.scorer.heuristics.content import LLM_OPERATIONS

if TYPE_CHECKING:
    from spanline.scorer.facts import SpanFacts, TraceFacts

_TOKEN_OPERATIONS = LLM_OPERATIONS | {"embeddings"}


def _error(trace: TraceFacts, cfg: HeuristicSettings) -> Result | None:
    errors = sum(1 for s in trace.spans if s.status_code == "ERROR")
    return flag(errors > 0, f"{errors} span(s) with status ERROR" if errors else "")


def _latency(trace: TraceFacts, cfg: HeuristicSettings) -> Result | None:
    """The root's duration; without a root, first start to last end of what arrived."""
    if trace.root is not None:
        ms = trace.root.duration_ns / 1e6
    elif trace.spans:
        ms = max(0, max(s.end_ns for s in trace.spans) - min(s.start_ns for s in trace.spans)) / 1e6
    else:
        return None
    return Result(ms, "slow" if ms > cfg.latency_ms_threshold else "ok")


def _ttft(trace: TraceFacts, cfg: HeuristicSettings) -> Result | None:
    """Time to first token of the trace's first streamed LLM call."""
    for s in trace.spans:  # start order
        if s.ttft_ms is not None:
            return Result(s.ttft_ms, "slow" if s.ttft_ms > cfg.ttft_ms_threshold else "ok")
    return None


def _usage_spans(trace: TraceFacts) -> list[SpanFacts]:
    """Spans of model calls; when none is typed as one, every span (an agent span may
    then be the only carrier of usage)."""
    calls = [s for s in trace.spans if s.operation in _TOKEN_OPERATIONS]
    return calls or trace.spans


def _cost(trace: TraceFacts, cfg: HeuristicSettings) -> Result | None:
    costs = [s.cost_usd for s in _usage_spans(trace) if s.cost_usd is not None]
    if not costs:
        return None
    total = sum(costs)
    return Result(total, "high" if total > cfg.cost_usd_threshold else "ok")


def _tokens(field: str) -> Heuristic:
    def run(trace: TraceFacts, cfg: HeuristicSettings) -> Result | None:
        values = [getattr(s, field) for s in _usage_spans(trace)]
        known = [v for v in values if v is not None]
        if not known:
            return None
        total = float(sum(known))
        return Result(total, "high" if total > cfg.tokens_threshold else "ok")

    return Heuristic(field, "1", run)


def _tool_errors(trace: TraceFacts, cfg: HeuristicSettings) -> Result | None:
    tools = [s for s in trace.spans if s.is_tool]
    if not tools:
        return Result(0.0, "pass")
    failed = sum(1 for s in tools if s.status_code == "ERROR")
    return Result(
        float(failed), "fail" if failed else "pass", f"{failed} of {len(tools)} tool call(s) failed"
    )


HEURISTICS = (
    Heuristic("error", "1", _error),
    Heuristic("latency_ms", "1", _latency),
    Heuristic("ttft_ms", "1", _ttft),
    Heuristic("cost_usd", "1", _cost),
    _tokens("input_tokens"),
    _tokens("output_tokens"),
    Heuristic("tool_errors", "1", _tool_errors),
)
