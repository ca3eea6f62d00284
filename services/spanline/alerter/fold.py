"""Stage one: scores -> partial aggregates per (rule, group labels, time bucket).

Scores are keyed by trace id, so one rule group's scores are spread over every score
partition. Each instance folds the score partitions it owns into small partials and
publishes them keyed by the notification group; the instance that owns that key merges
them. The folder is stateless between batches: a replayed batch re-publishes the same
partials, and the merging side drops those by source offset. (What it keeps are caches:
which rules a score name feeds, and each alert's labels, fingerprint and group key, so
the per-score work is a few dictionary lookups and one aggregate update.)
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spanline.alerter.aggregate import Agg
from spanline.alerter.compiled import CompiledRule, LabelReader, RuleIndex
from spanline.alerter.routing import Router, fingerprint
from spanline.scorer.scores import KIND_LLM_JUDGE
from spanline.v1.spanline_pb2 import Score

PARTIAL_VERSION = 1


# alert identities remembered across batches; beyond it the memo starts over (at a drain)
IDENTITY_MEMO_LIMIT = 200_000
# (score name, evaluator kind) pairs whose rules are remembered; beyond it that memo starts over
PLAN_MEMO_LIMIT = 10_000

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


class AlertSlot:
    """One alert (rule + group label values): who it is, and this batch's buckets of it.

    Made once per alert and kept across batches, so a score folded into a known alert
    allocates nothing but, for a new time bucket, one aggregate. It keeps only what a
    partial needs: the JSON of its entries around bucket and aggregate, encoded once.
    """

    __slots__ = ("buckets", "group", "head", "partial", "tail")

    def __init__(self, rule: CompiledRule, labels: dict[str, str], group: tuple[str, str]) -> None:
        self.group = group
        """(notification group key, the key as JSON), shared by the group's alerts."""
        self.head = "[" + _json([rule.name, labels])[1:-1] + ","
        self.tail = "," + _json(fingerprint(labels)) + "]"
        self.buckets: dict[int, Agg] = {}
        """Time bucket -> aggregate, of the current batch (emptied when it is published)."""
        self.partial: GroupPartial | None = None
        """The group partial of the current batch, once this batch touched the alert."""


class RuleFold:
    """What folding a score into one rule needs, read once from the rule."""

    __slots__ = ("bucket_s", "hit", "pass_labels", "ratio_value", "read", "rule", "sketch", "slots")

    def __init__(self, rule: CompiledRule, read: LabelReader) -> None:
        self.rule = rule
        self.read = read
        self.bucket_s = rule.bucket_s
        self.pass_labels = rule.pass_labels
        self.sketch = rule.needs_sketch
        self.hit = _OPS[rule.ratio_op] if rule.aggregate == "ratio" else None
        self.ratio_value = rule.ratio_value
        self.slots: dict[tuple[str, ...], AlertSlot] = {}
        """Group label values -> the alert they make."""


@dataclass(slots=True)
class GroupPartial:
    """Everything one batch contributed to one notification group."""

    group_key: str
    group_json: str
    alerts: list[AlertSlot] = field(default_factory=list)
    src: dict[str, int] = field(default_factory=dict)

    def to_wire(self) -> bytes:
        """``{"v":1,"g":group,"src":{...},"e":[[rule, labels, bucket, aggregate, fingerprint], ...]}``.

        Written from per-alert fragments (:class:`AlertSlot`) and :meth:`Agg.wire_text`
        rather than by encoding a fresh structure: the same JSON, a third of the work.
        """
        entries = [
            agg.wire_text(f"{slot.head}{bucket},", slot.tail)
            for slot in self.alerts
            for bucket, agg in slot.buckets.items()
        ]
        src = ",".join([f"{_json_key(k)}:{v}" for k, v in self.src.items()])
        body = f'{{"v":{PARTIAL_VERSION},"g":{self.group_json},"src":{{{src}}},"e":[{",".join(entries)}]}}'
        return body.encode()


@dataclass(slots=True)
class DecodedPartial:
    group_key: str
    src: dict[str, int]
    entries: list[list[Any]]
    """``[rule, labels, bucket, aggregate as Agg.to_wire wrote it, fingerprint]``, types checked."""


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


@functools.lru_cache(maxsize=4096)
def _json_key(text: str) -> str:
    """A source partition's name as a JSON string (few distinct ones, each encoded once)."""
    return _json(text)


def decode_partial(value: bytes) -> DecodedPartial:
    """The partial in `value`; ValueError/KeyError/TypeError when it is not one.

    Every entry's shape and types are checked here, before anything is merged, so a bad
    partial is dead-lettered whole instead of failing half-way through a merge.
    """
    body = json.loads(value)
    if not isinstance(body, dict) or body.get("v") != PARTIAL_VERSION:
        raise ValueError("not a spanline alerter partial")
    entries = body["e"]
    if type(entries) is not list:
        raise TypeError("partial entries are not a list")
    for e in entries:
        if type(e) is not list or len(e) != 5:
            raise ValueError("partial entry is not [rule, labels, bucket, aggregate, fingerprint]")
        rule, labels, bucket, agg, fp = e
        if (
            type(rule) is not str
            or type(labels) is not dict
            or type(bucket) is not int
            or type(agg) is not list
            or not 7 <= len(agg) <= 8
            or type(fp) is not str
        ):
            raise TypeError("partial entry has a field of the wrong type")
    return DecodedPartial(str(body["g"]), {str(k): int(v) for k, v in body["src"].items()}, entries)


class Folder:
    def __init__(self, index: RuleIndex, router: Router) -> None:
        self.index = index
        self.router = router
        self.groups: dict[str, GroupPartial] = {}
        self._plans: dict[str, dict[str, tuple[RuleFold, ...]]] = {}
        """Score name -> evaluator kind -> the rules such a score feeds."""
        self._plan_count = 0
        self._folds: dict[str, RuleFold] = {}
        self._readers: dict[tuple[str, ...], LabelReader] = {}
        self._slot_count = 0
        self._group_names: dict[str, tuple[str, str]] = {}
        """Group key -> (key, key as JSON): one copy per group, not one per alert."""

    def _plan(self, name: str, kind: str) -> tuple[RuleFold, ...]:
        if self._plan_count >= PLAN_MEMO_LIMIT:
            self._plans = {}
            self._plan_count = 0
        plan = tuple(self._fold_of(r) for r in self.index.select(name, kind))
        self._plans.setdefault(name, {})[kind] = plan
        self._plan_count += 1
        return plan

    def _fold_of(self, rule: CompiledRule) -> RuleFold:
        found = self._folds.get(rule.name)
        if found is None:
            read = self._readers.get(rule.group_by)
            if read is None:
                # rules with the same group_by share a reader (and so its values per score)
                read = self._readers[rule.group_by] = self.index.label_reader(rule.group_by)
            found = self._folds[rule.name] = RuleFold(rule, read)
        return found

    def _new_slot(self, rf: RuleFold, values: tuple[str, ...]) -> AlertSlot:
        rule = rf.rule
        labels = dict(zip(rule.group_by, values, strict=True))
        labels.update(rule.labels)
        labels["alertname"] = rule.name
        key = self.router.plan(labels).group_key(labels)
        group = self._group_names.get(key)
        if group is None:
            group = self._group_names[key] = (key, _json(key))
        slot = rf.slots[values] = AlertSlot(rule, labels, group)
        self._slot_count += 1
        return slot

    def fold(self, score: Score, event_time_s: float, src: str, offset: int) -> None:
        kind = score.evaluator_kind
        if kind == KIND_LLM_JUDGE and not score.score_label:
            # a judge error score (value 0, no label, error.type set) is not a verdict: counted
            # as a failure it would turn a judge outage into a pass-rate drop
            return
        by_kind = self._plans.get(score.name)
        plan = by_kind.get(kind) if by_kind is not None else None
        if plan is None:
            plan = self._plan(score.name, kind)
        if not plan:
            return
        score_value = score.score_value
        weight = score.sampling_weight
        if not weight > 0:
            weight = 1.0
        last_read: LabelReader | None = None
        values: tuple[str, ...] = ()
        for rf in plan:
            if rf.pass_labels is not None:
                value = 1.0 if score.score_label in rf.pass_labels else 0.0
            else:
                value = score_value
            if rf.read is not last_read:
                last_read = rf.read
                values = last_read(score)
            slot = rf.slots.get(values)
            if slot is None:
                slot = self._new_slot(rf, values)
            group = slot.partial
            if group is None:
                key, key_json = slot.group
                group = self.groups.get(key)
                if group is None:
                    group = self.groups[key] = GroupPartial(key, key_json)
                slot.partial = group
                group.alerts.append(slot)
            bucket = int(event_time_s // rf.bucket_s * rf.bucket_s)
            hit = rf.hit is not None and rf.hit(value, rf.ratio_value)
            agg = slot.buckets.get(bucket)
            if agg is None:
                slot.buckets[bucket] = Agg.of(value, weight, hit, rf.sketch)
            else:
                agg.add(value, weight, hit)
            if group.src.get(src, -1) < offset:
                group.src[src] = offset

    def drain(self) -> list[tuple[str, bytes]]:
        """This batch's partials, encoded: (group key, value); the next batch starts empty.

        Encoded here because the alerts' bucket dicts are emptied for the next batch
        (reused, so a batch allocates no dict per alert it touches).
        """
        out = []
        for group in self.groups.values():
            out.append((group.group_key, group.to_wire()))
            for slot in group.alerts:
                slot.partial = None
                slot.buckets.clear()
        self.groups = {}
        if self._slot_count > IDENTITY_MEMO_LIMIT:
            for rf in self._folds.values():
                rf.slots = {}
            self._group_names = {}
            self._slot_count = 0
        return out
