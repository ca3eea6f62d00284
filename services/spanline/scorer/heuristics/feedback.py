"""``user_feedback``: what the user said about the answer, when the app recorded it.

The attribute convention (docs/scoring.md) is spanline's own ``user.feedback.score`` /
``user.feedback.label`` on any span, on a span event or on a log event of the trace, and
the names Langfuse- and OpenInference-instrumented apps use (``feedback.*``,
``user_feedback``, Phoenix-style annotation ``label``/``score``). The latest feedback in
the trace wins. Normalised value: 1 positive, 0 negative, 0.5 neutral; ratings above 1
are read as a 1-5 scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from spanline.scorer.config import HeuristicSettings
from spanline.scorer.heuristics.base import Heuristic, Result

if TYPE_CHECKING:
    from spanline.scorer.facts import TraceFacts

SCORE_KEYS = (
    "user.feedback.score",
    "user_feedback",
    "feedback.score",
    "feedback.value",
    "langfuse.score.value",
)
LABEL_KEYS = ("user.feedback.label", "feedback.label", "feedback")
FEEDBACK_EVENTS = frozenset({"user.feedback", "user_feedback", "feedback", "gen_ai.user.feedback"})
EVENT_SCORE_KEYS = ("score", "value", "rating")
EVENT_LABEL_KEYS = ("label",)

_POSITIVE = frozenset(
    {"positive", "thumbs_up", "thumbs-up", "thumbsup", "up", "like", "good", "yes", "true", "👍"}
)
_NEGATIVE = frozenset(
    {"negative", "thumbs_down", "thumbs-down", "thumbsdown", "down", "dislike", "bad", "no", "false", "👎"}
)
_NEUTRAL = frozenset({"neutral", "mixed"})


def normalise(value: Any) -> float | None:
    """A feedback value (number, bool or label) as 0..1, or None when it is not one."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        x = float(value)
        if x != x:
            return None
        if x < 0:
            return 0.0
        if x <= 1:
            return x
        return min(1.0, (x - 1) / 4)  # a 1..5 rating
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _POSITIVE:
            return 1.0
        if text in _NEGATIVE:
            return 0.0
        if text in _NEUTRAL:
            return 0.5
        try:
            return normalise(float(text))
        except ValueError:
            return None
    return None


def feedback_value(
    attrs: Mapping[str, Any], score_keys: tuple[str, ...], label_keys: tuple[str, ...]
) -> float | None:
    """The first score key's normalised value, else the first label key's; None when none is."""
    for key in score_keys:
        if key in attrs:
            found = normalise(attrs[key])
            if found is not None:
                return found
    for key in label_keys:
        if key in attrs:
            found = normalise(attrs[key])
            if found is not None:
                return found
    return None


def _feedback(trace: TraceFacts, cfg: HeuristicSettings) -> Result | None:
    """Spans' and span events' feedback was read on arrival (``SpanFacts.feedback``), log
    events' too (``TraceFacts.feedback_logs``)."""
    found: list[tuple[int, float]] = [f for s in trace.spans for f in s.feedback]
    found.extend(trace.feedback_logs)
    if not found:
        return None
    value = max(found)[1]
    label = "positive" if value > 0.5 else "negative" if value < 0.5 else "neutral"
    return Result(value, label, f"{len(found)} feedback record(s); the latest counts")


HEURISTICS = (Heuristic("user_feedback", "1", _feedback),)
