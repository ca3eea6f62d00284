"""Stage two: merged windows per alert, and the pending/firing/resolved state machine.

Evaluation is on event time: scores land in the bucket of their own timestamp, late
ones are still merged while their bucket is within the window plus the allowed
lateness, older ones are dropped and counted. A window below ``min_samples`` is
"insufficient data": it never makes an alert OK, and neither does an empty window while
the windows refill after a restart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from spanline.alerter.aggregate import Agg, merged
from spanline.alerter.compiled import CompiledRule
from spanline.alerter.durations import format_duration
from spanline.alerter.routing import fingerprint
from spanline.alerter.rules import compare, render_template

State = Literal["inactive", "pending", "firing"]
Verdict = Literal["true", "false", "insufficient", "no_data"]


@dataclass(frozen=True, slots=True)
class Reading:
    verdict: Verdict
    value: float | None = None
    baseline: float | None = None
    change_pct: float | None = None
    samples: int = 0


NO_READING = Reading("no_data")
"""What a series read before its first evaluation (shared: readings are never changed)."""


@dataclass(slots=True)
class Series:
    """One alert instance: its buckets and its state."""

    rule: CompiledRule
    labels: dict[str, str]
    fine: dict[int, Agg] = field(default_factory=dict)
    coarse: dict[int, Agg] = field(default_factory=dict)
    first_seen: float = math.inf
    state: State = "inactive"
    pending_since: float = 0.0
    active_at: float = 0.0
    last_true: float = 0.0
    last: Reading = NO_READING

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    def merge(self, bucket: int, wire: list[Any]) -> None:
        change = self.rule.change
        if change is not None:
            # first: the fine slot may take ownership of the wire's raw list
            cb = int(bucket // change.bucket * change.bucket)
            cslot = self.coarse.get(cb)
            if cslot is None:
                cslot = self.coarse[cb] = Agg()
            cslot.merge_wire(wire)
        slot = self.fine.get(bucket)
        if slot is None:
            self.fine[bucket] = Agg.of_wire(wire, self.rule.needs_sketch)
        else:
            slot.merge_wire(wire)
        if bucket < self.first_seen:
            self.first_seen = float(bucket)

    def prune(self, now: float) -> None:
        rule = self.rule
        horizon = now - rule.window_s - rule.allowed_lateness_s - rule.bucket_s
        for b in [b for b in self.fine if b < horizon]:
            del self.fine[b]
        if rule.change is not None:
            chorizon = now - rule.retention_s
            for b in [b for b in self.coarse if b < chorizon]:
                del self.coarse[b]

    def read(self, now: float) -> Reading:
        rule = self.rule
        start = now - rule.window_s
        aggs = [a for b, a in self.fine.items() if b + rule.bucket_s > start and b <= now]
        cur = merged(aggs, rule.needs_sketch)
        if cur.n == 0:
            return Reading("no_data", samples=0)
        value = cur.value(rule.aggregate)
        if cur.n < rule.min_samples or value is None:
            return Reading("insufficient", value=value, samples=cur.n)
        if rule.threshold is not None:
            ok = compare(rule.threshold.op, value, rule.threshold.value)
            return Reading("true" if ok else "false", value=value, samples=cur.n)
        baseline = self._baseline(now)
        if baseline is None:
            return Reading("insufficient", value=value, samples=cur.n)
        change = rule.change
        assert change is not None
        delta = value - baseline
        pct = 100.0 * delta / max(abs(baseline), change.min_baseline)
        if change.direction == "increase":
            hit = delta > 0 and pct >= change.pct and delta >= change.min_abs_delta
        elif change.direction == "decrease":
            hit = delta < 0 and -pct >= change.pct and -delta >= change.min_abs_delta
        else:
            hit = abs(pct) >= change.pct and abs(delta) >= change.min_abs_delta
        return Reading(
            "true" if hit else "false", value=value, baseline=baseline, change_pct=pct, samples=cur.n
        )

    def _baseline(self, now: float) -> float | None:
        rule = self.rule
        change = rule.change
        assert change is not None
        cb = change.bucket
        if change.baseline == "offset":
            for off in sorted({change.offset, *change.fallback_offsets}, reverse=True):
                start, end = now - off - rule.window_s, now - off
                if self.first_seen > start + cb / 2:
                    continue
                aggs = [a for b, a in self.coarse.items() if start <= b + cb / 2 < end]
                base = merged(aggs, False)
                if base.n == 0:
                    continue
                return base.value(rule.aggregate)
            return None
        values: list[float] = []
        lo = now - change.lookback
        hi = now - rule.window_s
        for b, agg in self.coarse.items():
            if b >= lo and b + cb <= hi and agg.n > 0:
                got = agg.value(rule.aggregate)
                if got is not None:
                    values.append(got)
        if not values:
            return None
        mean = sum(values) / len(values)
        if rule.aggregate in ("sum", "count"):
            mean *= rule.window_s / cb
        return mean

    def to_state(self) -> dict[str, Any]:
        return {
            "rule": self.rule.name,
            "labels": self.labels,
            "fine": {str(b): a.to_wire() for b, a in self.fine.items()},
            "coarse": {str(b): a.to_wire() for b, a in self.coarse.items()},
            "first_seen": None if math.isinf(self.first_seen) else self.first_seen,
            "state": self.state,
            "pending_since": self.pending_since,
            "active_at": self.active_at,
            "last_true": self.last_true,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any], rule: CompiledRule) -> Series:
        s = cls(rule, dict(data["labels"]))
        s.fine = {int(b): Agg.from_wire(a) for b, a in data["fine"].items()}
        s.coarse = {int(b): Agg.from_wire(a) for b, a in data["coarse"].items()}
        s.first_seen = math.inf if data["first_seen"] is None else float(data["first_seen"])
        s.state = data["state"]
        s.pending_since = float(data["pending_since"])
        s.active_at = float(data["active_at"])
        s.last_true = float(data["last_true"])
        return s


@dataclass(frozen=True, slots=True)
class Transition:
    """An alert started firing or resolved."""

    group_key: str
    fingerprint: str
    rule: str
    labels: dict[str, str]
    annotations: dict[str, str]
    firing: bool
    at: float
    starts_at: float
    value: float
    threshold: float


def annotations_for(series: Series) -> dict[str, str]:
    rule = series.rule
    r = series.last
    fields = {
        "rule": rule.name,
        "value": _num(r.value),
        "threshold": _num(rule.threshold.value) if rule.threshold else "",
        "baseline": _num(r.baseline),
        "change_pct": _num(r.change_pct),
        "samples": str(r.samples),
        "window": format_duration(rule.window_s),
        "aggregate": rule.aggregate,
        "score": ",".join(sorted(rule.scores)) or "*",
    }
    out = {k: render_template(v, fields, series.labels) for k, v in rule.annotations.items()}
    if "summary" not in out:
        out["summary"] = (
            f"{rule.name}: {rule.aggregate} {fields['value']} over {fields['window']} "
            f"({fields['samples']} samples)"
        )
    return out


def _num(x: float | None) -> str:
    if x is None:
        return ""
    if abs(x) >= 10_000:  # 11,970 ms and 5,178,000 tokens read better than 1.197e+04
        return f"{x:,.0f}"
    return f"{x:.4g}"


@dataclass(slots=True)
class GroupState:
    key: str
    series: dict[str, Series] = field(default_factory=dict)
    src: dict[str, int] = field(default_factory=dict)
    dirty: bool = False


def step(series: Series, reading: Reading, now: float, hold: bool) -> bool | None:
    """Advance the state machine; True = started firing, False = resolved, None = no change.

    `hold` is set while windows refill after a restart: then no verdict but a true one
    changes anything, so an empty window cannot resolve an alert.
    """
    rule = series.rule
    series.last = reading
    verdict = reading.verdict
    if verdict == "no_data":
        if hold or rule.no_data == "keep_state":
            return None
        verdict = "true" if rule.no_data == "alerting" else "false"
    elif verdict == "insufficient":
        return None
    if verdict == "true":
        series.last_true = now
        if series.state == "inactive":
            series.state = "pending"
            series.pending_since = now
        if series.state == "pending" and now - series.pending_since >= rule.for_s:
            series.state = "firing"
            series.active_at = now
            return True
        return None
    if series.state == "pending":
        series.state = "inactive"
        return None
    if series.state == "firing" and now - series.last_true >= rule.keep_firing_for_s:
        series.state = "inactive"
        return False
    return None


class Evaluator:
    """All alert series of the groups one instance owns."""

    def __init__(self, rules: dict[str, CompiledRule]) -> None:
        self.rules = rules
        self.groups: dict[str, GroupState] = {}
        self.hold_until = 0.0
        self.late_dropped = 0

    def merge(self, group_key: str, src: dict[str, int], entries: list[Any], now: float) -> bool:
        """Merge one partial; False when its source offsets were already applied (replay)."""
        group = self.groups.get(group_key)
        if group is None:
            group = self.groups[group_key] = GroupState(group_key)
        if src and all(group.src.get(k, -1) >= v for k, v in src.items()):
            return False
        rules = self.rules
        group_series = group.series
        for rule_name, labels, bucket, agg, fp in entries:
            rule = rules.get(rule_name)
            if rule is None:
                continue
            if bucket + rule.bucket_s < now - rule.retention_s:
                self.late_dropped += int(agg[0])
                continue
            series = group_series.get(fp)
            if series is None:
                series = group_series[fp] = Series(rule, labels)
            if rule.change is not None:
                series.merge(bucket, agg)
                continue
            # Series.merge without the baseline's coarse buckets, inline (once per partial entry)
            slot = series.fine.get(bucket)
            if slot is None:
                series.fine[bucket] = Agg.of_wire(agg, rule.needs_sketch)
            else:
                slot.merge_wire(agg)
            if bucket < series.first_seen:
                series.first_seen = float(bucket)
        for k, v in src.items():
            if group.src.get(k, -1) < v:
                group.src[k] = v
        group.dirty = True
        return True

    def evaluate(self, now: float) -> list[Transition]:
        hold = now < self.hold_until
        out: list[Transition] = []
        for group in self.groups.values():
            for fp, series in group.series.items():
                series.prune(now)
                changed = step(series, series.read(now), now, hold)
                if changed is None:
                    continue
                group.dirty = True
                rule = series.rule
                threshold = rule.threshold.value if rule.threshold else (series.last.baseline or 0.0)
                out.append(
                    Transition(
                        group.key,
                        fp,
                        rule.name,
                        series.labels,
                        annotations_for(series),
                        changed,
                        now,
                        series.active_at,
                        series.last.value if series.last.value is not None else math.nan,
                        threshold,
                    )
                )
        return out

    def firing(self) -> list[tuple[str, Series]]:
        return [(g.key, s) for g in self.groups.values() for s in g.series.values() if s.state == "firing"]

    def group_to_state(self, group: GroupState) -> dict[str, Any]:
        return {"g": group.key, "src": group.src, "series": [s.to_state() for s in group.series.values()]}

    def load_group(self, data: dict[str, Any]) -> None:
        group = GroupState(str(data["g"]), src={str(k): int(v) for k, v in data["src"].items()})
        for item in data["series"]:
            rule = self.rules.get(item["rule"])
            if rule is None:
                continue
            series = Series.from_state(item, rule)
            group.series[series.fingerprint] = series
        self.groups[group.key] = group
