"""The deterministic scorers (``evaluator_kind`` ``heuristic``), in contract order.

Names are part of the contract: alert rules and dashboards refer to them.
"""

from __future__ import annotations

from spanline.scorer.config import HEURISTIC_NAMES
from spanline.scorer.heuristics import feedback, output, trace_facts
from spanline.scorer.heuristics.base import Heuristic, Result

HEURISTICS: tuple[Heuristic, ...] = trace_facts.HEURISTICS + output.HEURISTICS + feedback.HEURISTICS
BY_NAME = {h.name: h for h in HEURISTICS}
assert tuple(BY_NAME) == HEURISTIC_NAMES, "heuristics and config.HEURISTIC_NAMES disagree"

__all__ = ["BY_NAME", "HEURISTICS", "Heuristic", "Result"]
