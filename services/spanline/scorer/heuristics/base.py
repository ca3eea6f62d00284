"""What a heuristic is: a named, versioned pure function of a closed trace's facts.

A heuristic returns ``None`` when the trace holds nothing it can judge (no LLM output, no
JSON request...), so a missing score means "not applicable", never a silent zero. Bump a
heuristic's ``version`` whenever its meaning changes: the version is part of the score id,
so old and new results never overwrite each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from spanline.scorer.config import HeuristicSettings

if TYPE_CHECKING:  # facts reads payloads with this package's helpers
    from spanline.scorer.facts import TraceFacts


@dataclass(frozen=True, slots=True)
class Result:
    value: float
    label: str = ""
    explanation: str = ""


@dataclass(frozen=True, slots=True)
class Heuristic:
    name: str
    version: str
    run: Callable[[TraceFacts, HeuristicSettings], Result | None]


def flag(hit: bool, explanation: str = "") -> Result:
    """0/1 scores: 1 means the problem is present (label ``fail``)."""
    return Result(1.0 if hit else 0.0, "fail" if hit else "pass", explanation)
