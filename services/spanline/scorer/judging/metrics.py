"""Prometheus metrics of the LLM judge (names prefixed ``spanline_judge_``).

Labels are bounded: evaluator names come from the evaluator file, error types and
stratum kinds are fixed sets, projects are configured tenants. Never a route, a model
as free text, a trace id or any payload.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import get_args

from prometheus_client import Counter, Gauge, Histogram

from spanline.core.metric_series import create_series
from spanline.scorer.judging.output import VerdictLabel

ERROR_LABEL = "error"
"""The verdicts label of a judge score that carries ``error.type`` instead of a verdict."""

TRACES = Counter(
    "spanline_judge_traces_total",
    "Completed traces by sampling decision (sampled | skipped | paced_out) and stratum kind "
    "(bulk or the tail reason)",
    ["stratum_kind", "decision"],
)
CALLS = Counter(
    "spanline_judge_calls_total",
    "HTTP calls to the judge endpoint by outcome (ok or an error type), retries and repairs included",
    ["evaluator", "outcome"],
)
CALL_SECONDS = Histogram(
    "spanline_judge_call_seconds",
    "Latency of one judge HTTP call",
    ["evaluator"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120),
)
VERDICTS = Counter(
    "spanline_judge_verdicts_total",
    "Judge scores emitted by label (pass | fail | error)",
    ["evaluator", "label"],
)
ERRORS = Counter(
    "spanline_judge_errors_total",
    "Judge scores that carry error.type instead of a verdict, by type",
    ["evaluator", "error_type"],
)
RETRIES = Counter("spanline_judge_retries_total", "Judge calls retried, by cause", ["cause"])
TOKENS = Counter(
    "spanline_judge_tokens_total", "Tokens used by the judge (from usage)", ["evaluator", "direction"]
)
COST = Counter("spanline_judge_cost_usd_total", "Judge spend in USD (from usage and prices)", ["evaluator"])
BUDGET_LEFT_USD = Gauge(
    "spanline_judge_budget_remaining_usd", "USD left of today's judge budget (cap minus spent)", ["project"]
)
BUDGET_LEFT_TOKENS = Gauge(
    "spanline_judge_budget_remaining_tokens", "Tokens left of today's judge token cap", ["project"]
)
BULK_FACTOR = Gauge(
    "spanline_judge_bulk_factor",
    "Pacing factor applied to bulk inclusion probabilities (1 = design rate, 0 = bulk budget spent)",
    ["project"],
)
PAUSED = Gauge(
    "spanline_judge_evaluator_paused",
    "1 while an evaluator is paused after 401/403/unknown model from the endpoint",
    ["evaluator"],
)
ESTIMATE_RATIO = Histogram(
    "spanline_judge_token_estimate_ratio",
    "Actual input tokens (usage) over the pre-call estimate",
    buckets=(0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2, 3),
)


def create_known_series(evaluators: Iterable[str]) -> None:
    """Verdict series at 0 and every evaluator unpaused, from the judge's start: the error
    ratio and pause alerts read a series before the first trace is judged."""
    evaluators = tuple(evaluators)
    create_series(VERDICTS, evaluators, (*get_args(VerdictLabel), ERROR_LABEL))
    create_series(PAUSED, evaluators)
