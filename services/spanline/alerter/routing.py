"""Labels, fingerprints and routes: which alert belongs to which notification group.

The notification group key is also the Kafka key of the alerter's partial aggregates,
so every alert of one group (and so every decision Alertmanager would take for it) lands
on one partition and is evaluated and notified by exactly one instance.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from spanline.alerter.rules import Route, RulesFile

DEFAULT_LABEL_SOURCES: dict[str, list[str]] = {
    "model": ["spanline.model", "model", "gen_ai.response.model", "gen_ai.request.model"],
    "agent": ["spanline.agent", "agent", "gen_ai.agent.name"],
    "environment": [
        "spanline.environment",
        "environment",
        "deployment.environment.name",
        "deployment.environment",
    ],
    "route": ["spanline.route", "route"],
}

DEFAULT_GROUP_BY = ("alertname", "project")
DEFAULT_GROUP_WAIT_S = 30.0
DEFAULT_GROUP_INTERVAL_S = 300.0
DEFAULT_REPEAT_INTERVAL_S = 4 * 3600.0
CONSOLE_RECEIVER = "console"


def fingerprint(labels: dict[str, str]) -> str:
    """Stable id of an alert from its labels: the same across restarts and instances."""
    text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """The effective settings of a matched route (inherited down the tree)."""

    path: str
    receiver: str
    group_by: tuple[str, ...]
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float

    def group_labels(self, labels: dict[str, str]) -> dict[str, str]:
        if self.group_by == ("...",):
            return dict(labels)
        return {k: labels.get(k, "") for k in self.group_by}

    def group_key(self, labels: dict[str, str]) -> str:
        return self.path + "|" + json.dumps(self.group_labels(labels), sort_keys=True, separators=(",", ":"))


@dataclass(slots=True)
class Router:
    root: Route | None
    receivers: list[str] = field(default_factory=list)
    group_wait_override: float | None = None

    @classmethod
    def from_rules(cls, rules: RulesFile) -> Router:
        return cls(rules.route, [r.name for r in rules.receivers])

    def plan(self, labels: dict[str, str]) -> RoutePlan:
        if self.root is None:
            return self._adjust(
                RoutePlan(
                    "root",
                    CONSOLE_RECEIVER,
                    DEFAULT_GROUP_BY,
                    DEFAULT_GROUP_WAIT_S,
                    DEFAULT_GROUP_INTERVAL_S,
                    DEFAULT_REPEAT_INTERVAL_S,
                )
            )
        plan = RoutePlan(
            "root",
            self.root.receiver or CONSOLE_RECEIVER,
            tuple(self.root.group_by) if self.root.group_by is not None else DEFAULT_GROUP_BY,
            _or(self.root.group_wait, DEFAULT_GROUP_WAIT_S),
            _or(self.root.group_interval, DEFAULT_GROUP_INTERVAL_S),
            _or(self.root.repeat_interval, DEFAULT_REPEAT_INTERVAL_S),
        )
        node = self.root
        while True:
            for i, child in enumerate(node.routes):
                if child.matchers.matches(labels):
                    plan = RoutePlan(
                        f"{plan.path}.{i}",
                        child.receiver or plan.receiver,
                        tuple(child.group_by) if child.group_by is not None else plan.group_by,
                        _or(child.group_wait, plan.group_wait_s),
                        _or(child.group_interval, plan.group_interval_s),
                        _or(child.repeat_interval, plan.repeat_interval_s),
                    )
                    node = child
                    break
            else:
                return self._adjust(plan)

    def _adjust(self, plan: RoutePlan) -> RoutePlan:
        if self.group_wait_override is None:
            return plan
        return RoutePlan(
            plan.path,
            plan.receiver,
            plan.group_by,
            self.group_wait_override,
            plan.group_interval_s,
            plan.repeat_interval_s,
        )


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
