"""Metrics of the scorer (the Kafka layer adds consumer lag, DLQ and commit metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

OPEN_TRACES = Gauge("spanline_scorer_open_traces", "Trace windows open in this consumer")
OPEN_BYTES = Gauge("spanline_scorer_open_bytes", "Message bytes held by open trace windows")
CLOSES = Counter("spanline_scorer_trace_closes_total", "Trace windows closed, by how", ["reason"])
LATE_SPANS = Counter(
    "spanline_scorer_late_messages_total", "Messages for an already decided trace (scored as late fragments)"
)
DROPPED_ON_REVOKE = Counter(
    "spanline_scorer_revoked_traces_total",
    "Open traces dropped because their partition was revoked (replayed)",
)
SCORES = Counter("spanline_scorer_scores_total", "Scores produced, by evaluator", ["evaluator", "kind"])
UNDECODABLE = Counter(
    "spanline_scorer_undecodable_messages_total",
    "Held messages the span model refused at close (scored without)",
)
TRACE_SPANS = Histogram(
    "spanline_scorer_trace_spans",
    "Spans per closed trace",
    buckets=(1, 2, 5, 10, 20, 50, 100, 500, 1000, 5000),
)
JUDGE_PENDING = Gauge("spanline_scorer_judge_pending_traces", "Traces whose judge work is not finished")
JUDGE_ABANDONED = Counter(
    "spanline_scorer_judge_abandoned_total", "Traces whose judge work was abandoned, by why", ["reason"]
)
HEURISTIC_ERRORS = Counter(
    "spanline_scorer_heuristic_errors_total", "Heuristics that raised (their score is missing)", ["heuristic"]
)
BAD_MESSAGES = Counter(
    "spanline_scorer_bad_messages_total", "Messages dead-lettered on arrival, by reason", ["reason"]
)
