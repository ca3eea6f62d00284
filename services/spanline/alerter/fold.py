"""Stage one: scores -> partial aggregates per (rule, group labels, time bucket).

Scores are keyed by trace id, so one rule group's scores are spread over every score
partition. Each instance folds the score partitions it owns into small partials and
publishes them keyed by the notification group; the instance that owns that key merges
them. The folder is stateless between batches: a replayed batch re-publishes the same
partials, and the merging side drops those by source offset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from spanline.alerter.aggregate import Agg
from spanline.alerter.compiled import CompiledRule, RuleIndex
from spanline.alerter.routing import Router, fingerprint
from spanline.scorer.scores import KIND_LLM_JUDGE
from spanline.v1.spanline_pb2 import Score

PARTIAL_VERSION = 1


@dataclass(frozen=True, slots=True)
class AlertIdentity:
    alert_key: str
    group_key: str
    labels: dict[str, str]


@dataclass(slots=True)
class GroupPartial:
    """Everything one batch contributed to one notification group."""

    group_key: str
    entries: dict[tuple[str, int], tuple[CompiledRule, AlertIdentity, Agg]] = field(default_factory=dict)
    src: dict[str, int] = field(default_factory=dict)

    def to_wire(self) -> bytes:
        body: dict[str, Any] = {
            "v": PARTIAL_VERSION,
            "g": self.group_key,
            "src": self.src,
            "e": [
                [rule.name, ident.labels, bucket, agg.to_wire(), ident.alert_key]
                for (_key, bucket), (rule, ident, agg) in self.entries.items()
            ],
        }
        return json.dumps(body, separators=(",", ":")).encode("utf-8")


@dataclass(slots=True)
class PartialEntry:
    rule: str
    labels: dict[str, str]
    bucket: int
    agg: list[Any]
    """The aggregate as :meth:`Agg.to_wire` wrote it (merged without an object in between)."""
    fingerprint: str


@dataclass(slots=True)
class DecodedPartial:
    group_key: str
    src: dict[str, int]
    entries: list[PartialEntry]


def decode_partial(value: bytes) -> DecodedPartial:
    body = json.loads(value)
    if not isinstance(body, dict) or body.get("v") != PARTIAL_VERSION:
        raise ValueError("not a spanline alerter partial")
    entries = [PartialEntry(str(e[0]), e[1], int(e[2]), e[3], str(e[4])) for e in body["e"]]
    return DecodedPartial(str(body["g"]), {str(k): int(v) for k, v in body["src"].items()}, entries)


class Folder:
    def __init__(self, index: RuleIndex, router: Router) -> None:
        self.index = index
        self.router = router
        self._identities: dict[tuple[str, tuple[str, ...]], AlertIdentity] = {}
        self.groups: dict[str, GroupPartial] = {}

    def identity(self, rule: CompiledRule, score: Score) -> AlertIdentity:
        values = tuple(self.index.label_value(score, name) for name in rule.group_by)
        cache_key = (rule.name, values)
        found = self._identities.get(cache_key)
        if found is not None:
            return found
        labels = dict(zip(rule.group_by, values, strict=True))
        labels.update(rule.labels)
        labels["alertname"] = rule.name
        ident = AlertIdentity(fingerprint(labels), self.router.plan(labels).group_key(labels), labels)
        if len(self._identities) > 200_000:
            self._identities.clear()
        self._identities[cache_key] = ident
        return ident

    def fold(self, score: Score, event_time_s: float, src: str, offset: int) -> None:
        if score.evaluator_kind == KIND_LLM_JUDGE and not score.score_label:
            # a judge error score (value 0, no label, error.type set) is not a verdict: counted
            # as a failure it would turn a judge outage into a pass-rate drop
            return
        for rule in self.index.matching(score):
            if rule.pass_labels is not None:
                value = 1.0 if score.score_label in rule.pass_labels else 0.0
            else:
                value = score.score_value
            weight = score.sampling_weight if score.sampling_weight > 0 else 1.0
            ident = self.identity(rule, score)
            bucket = int(event_time_s // rule.bucket_s * rule.bucket_s)
            group = self.groups.get(ident.group_key)
            if group is None:
                group = self.groups[ident.group_key] = GroupPartial(ident.group_key)
            slot = (ident.alert_key, bucket)
            entry = group.entries.get(slot)
            if entry is None:
                entry = group.entries[slot] = (rule, ident, Agg(with_sketch=rule.needs_sketch))
            hit = rule.aggregate == "ratio" and _cmp(rule.ratio_op, value, rule.ratio_value)
            entry[2].add(value, weight, hit)
            if group.src.get(src, -1) < offset:
                group.src[src] = offset

    def drain(self) -> list[GroupPartial]:
        out = list(self.groups.values())
        self.groups = {}
        return out


def _cmp(op: str, left: float, right: float) -> bool:
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == "==":
        return left == right
    return left != right
