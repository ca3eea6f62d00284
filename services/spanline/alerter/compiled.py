"""Rules with their defaults applied, and the score -> (rule, labels) matching.

Matching is the per-score hot path of the alerter (every score on ``spanline.scores``
passes through it), so the rules are indexed by score name once, here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spanline.alerter.routing import DEFAULT_LABEL_SOURCES
from spanline.alerter.rules import Change, Rule, RulesFile, Threshold
from spanline.v1.spanline_pb2 import Score

_BUILTIN_LABELS = frozenset({"project", "evaluator", "evaluator_kind"})


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    scores: frozenset[str]
    any_score: bool
    evaluator_kind: str | None
    pass_labels: frozenset[str] | None
    aggregate: str
    ratio_op: str
    ratio_value: float
    window_s: float
    bucket_s: float
    threshold: Threshold | None
    change: Change | None
    for_s: float
    keep_firing_for_s: float
    no_data: str
    min_samples: int
    allowed_lateness_s: float
    group_by: tuple[str, ...]
    labels: dict[str, str]
    annotations: dict[str, str]

    @property
    def needs_sketch(self) -> bool:
        return self.aggregate.startswith("p")

    @property
    def retention_s(self) -> float:
        """How far back from 'now' the rule's buckets are still needed."""
        keep = self.window_s + self.allowed_lateness_s + self.bucket_s
        if self.change is not None:
            keep = max(keep, self.change.horizon_s + self.window_s + self.change.bucket)
        return keep


def _auto_bucket(window_s: float) -> float:
    return float(min(60.0, max(1.0, window_s / 15.0)))


def compile_rule(rule: Rule, rules: RulesFile) -> CompiledRule:
    d = rules.defaults
    names = frozenset(s for s in rule.score if s != "*")
    ratio = rule.ratio
    return CompiledRule(
        name=rule.name,
        scores=names,
        any_score="*" in rule.score,
        evaluator_kind=rule.evaluator_kind,
        pass_labels=frozenset(rule.pass_labels) if rule.pass_labels is not None else None,
        aggregate=rule.aggregate,
        ratio_op=ratio.op if ratio else ">",
        ratio_value=ratio.value if ratio else 0.0,
        window_s=rule.window,
        bucket_s=rule.bucket or _auto_bucket(rule.window),
        threshold=rule.threshold,
        change=rule.change,
        for_s=d.for_ if rule.for_ is None else rule.for_,
        keep_firing_for_s=d.keep_firing_for if rule.keep_firing_for is None else rule.keep_firing_for,
        no_data=rule.no_data or d.no_data,
        min_samples=rule.min_samples or d.min_samples,
        allowed_lateness_s=d.allowed_lateness if rule.allowed_lateness is None else rule.allowed_lateness,
        group_by=tuple(rule.group_by if rule.group_by is not None else d.group_by),
        labels={**d.labels, **rule.labels},
        annotations=dict(rule.annotations),
    )


@dataclass(slots=True)
class RuleIndex:
    """Rules by score name, plus how each group label is read from a score."""

    rules: list[CompiledRule]
    eval_interval_s: float
    label_sources: dict[str, list[str]]
    by_name: dict[str, list[CompiledRule]] = field(default_factory=dict)
    wildcard: list[CompiledRule] = field(default_factory=list)

    @classmethod
    def from_rules(cls, rules: RulesFile) -> RuleIndex:
        compiled = [compile_rule(r, rules) for r in rules.rules]
        index = cls(compiled, rules.defaults.eval_interval, {**DEFAULT_LABEL_SOURCES, **rules.label_sources})
        for rule in compiled:
            if rule.any_score:
                index.wildcard.append(rule)
            for name in rule.scores:
                index.by_name.setdefault(name, []).append(rule)
        return index

    def by_rule(self) -> dict[str, CompiledRule]:
        return {r.name: r for r in self.rules}

    def matching(self, score: Score) -> list[CompiledRule]:
        named = self.by_name.get(score.name)
        if not self.wildcard:
            candidates = named or []
        else:
            candidates = [*(named or []), *self.wildcard]
        if not candidates:
            return candidates
        kind = score.evaluator_kind
        return [r for r in candidates if r.evaluator_kind is None or r.evaluator_kind == kind]

    def label_value(self, score: Score, name: str) -> str:
        if name == "project":
            return score.project_id
        if name == "evaluator":
            return score.name
        if name == "evaluator_kind":
            return score.evaluator_kind
        attrs = score.attributes
        for key in self.label_sources.get(name, (name,)):
            got = attrs.get(key)
            if got:
                return got
        return ""
