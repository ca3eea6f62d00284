"""``user_feedback``: what the user said about the answer, when the app recorded it.

The attribute convention (docs/scoring.md) is spanline's own ``user.feedback.score`` /
``user.feedback.label`` on any span, on a span event or on a log event of the trace, and
the names Langfuse- and OpenInference-instrumented apps use (``feedback.*``,
``user_feedback``, Phoenix-style annotation ``label``/``score``). The latest feedback in
the trace wins. Normalised value: 1 positive, 0 negative, 0.5 neutral; ratings above 1
are read as a 1-5 scale.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from spanline.scorer.config import HeuristicSettings
from spanline.scorer.heuristics.base import Heuristic, Result
from spanline.scorer.trace import CompletedTrace

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


def _from(attrs: Mapping[str, Any], score_keys: tuple[str, ...], label_keys: tuple[str, ...]) -> float | None:
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


def _feedback(trace: CompletedTrace, cfg: HeuristicSettings) -> Result | None:
    found: list[tuple[int, float]] = []  # (time, value)
    for s in trace.spans:
        value = _from(s.attributes, SCORE_KEYS, LABEL_KEYS)
        if value is not None:
            found.append((s.end_ns, value))
        if s.events and "feedback" in s.events:
            try:
                events = json.loads(s.events)
            except ValueError:
                events = []
            for ev in events if isinstance(events, list) else []:
                if isinstance(ev, dict) and ev.get("name") in FEEDBACK_EVENTS:
                    attrs = ev.get("attributes") or {}
                    value = _from(attrs, EVENT_SCORE_KEYS + SCORE_KEYS, EVENT_LABEL_KEYS + LABEL_KEYS)
                    if value is not None:
                        found.append((int(ev.get("time_unix_nano") or s.end_ns), value))
    for rec in trace.logs:
        if rec.event_name in FEEDBACK_EVENTS or any(
            k in rec.attributes for k in SCORE_KEYS[:1] + LABEL_KEYS[:1]
        ):
            value = _from(rec.attributes, EVENT_SCORE_KEYS + SCORE_KEYS, EVENT_LABEL_KEYS + LABEL_KEYS)
            if value is not None:
                found.append((rec.time_ns, value))
    if not found:
        return None
    value = max(found)[1]
    label = "positive" if value > 0.5 else "negative" if value < 0.5 else "neutral"
    return Result(value, label, f"{len(found)} feedback record(s); the latest counts")


HEURISTICS = (Heuristic("user_feedback", "1", _feedback),)
