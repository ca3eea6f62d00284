"""Rules with their defaults applied, and the score -> (rule, labels) matching.

Matching is the per-score hot path of the alerter (every score on ``spanline.scores``
passes through it), so the rules are indexed by score name once, here; the folder
remembers :meth:`RuleIndex.select` per (score name, evaluator kind), so a score touches
only the rules that can use it.
"""

from __future__ import annotations

from collections.abc import Callable
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
    needs_sketch: bool
    """Quantile aggregates keep a DDSketch (stored, not derived: read once per merged bucket)."""
    retention_s: float
    """How far back from 'now' the rule's buckets are still needed."""


def _auto_bucket(window_s: float) -> float:
    return float(min(60.0, max(1.0, window_s / 15.0)))


def _retention_s(window_s: float, lateness_s: float, bucket_s: float, change: Change | None) -> float:
    keep = window_s + lateness_s + bucket_s
    if change is not None:
        keep = max(keep, change.horizon_s + window_s + change.bucket)
    return keep


def compile_rule(rule: Rule, rules: RulesFile) -> CompiledRule:
    d = rules.defaults
    names = frozenset(s for s in rule.score if s != "*")
    ratio = rule.ratio
    bucket_s = rule.bucket or _auto_bucket(rule.window)
    lateness_s = d.allowed_lateness if rule.allowed_lateness is None else rule.allowed_lateness
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
        bucket_s=bucket_s,
        threshold=rule.threshold,
        change=rule.change,
        for_s=d.for_ if rule.for_ is None else rule.for_,
        keep_firing_for_s=d.keep_firing_for if rule.keep_firing_for is None else rule.keep_firing_for,
        no_data=rule.no_data or d.no_data,
        min_samples=rule.min_samples or d.min_samples,
        allowed_lateness_s=lateness_s,
        group_by=tuple(rule.group_by if rule.group_by is not None else d.group_by),
        labels={**d.labels, **rule.labels},
        annotations=dict(rule.annotations),
        needs_sketch=rule.aggregate.startswith("p"),
        retention_s=_retention_s(rule.window, lateness_s, bucket_s, rule.change),
    )


LabelReader = Callable[[Score], tuple[str, ...]]
"""Reads one rule's group label values from a score, in the rule's group_by order."""

# group labels read from a Score field rather than from its attributes
_FIELD_LABELS = {"project": "project_id", "evaluator": "name", "evaluator_kind": "evaluator_kind"}


def _reader(steps: tuple[tuple[str | None, tuple[str, ...]], ...]) -> LabelReader:
    def read(score: Score) -> tuple[str, ...]:
        attrs = None
        values: list[str] = []
        for field_name, sources in steps:
            if field_name is not None:
                values.append(getattr(score, field_name))
                continue
            if attrs is None:
                attrs = score.attributes
            value = ""
            for key in sources:
                got = attrs.get(key)
                if got:
                    value = got
                    break
            values.append(value)
        return tuple(values)

    return read


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

    def select(self, name: str, kind: str) -> list[CompiledRule]:
        """The rules a score of this name and evaluator kind feeds (named ones first)."""
        candidates = [*self.by_name.get(name, ()), *self.wildcard]
        return [r for r in candidates if r.evaluator_kind is None or r.evaluator_kind == kind]

    def matching(self, score: Score) -> list[CompiledRule]:
        return self.select(score.name, score.evaluator_kind)

    def label_reader(self, group_by: tuple[str, ...]) -> LabelReader:
        """A function reading `group_by`'s values from a score; an absent label reads as ""."""
        steps = tuple(
            (_FIELD_LABELS.get(name), tuple(self.label_sources.get(name, (name,)))) for name in group_by
        )
        return _reader(steps)
