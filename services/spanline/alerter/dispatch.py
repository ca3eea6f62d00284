"""Alertmanager's notification semantics: aggregation groups, timers, dedup, muting.

Followed literally (dispatch/dispatch.go, notify/dedup_stage.go):
- a new group waits ``group_wait`` before its first flush (at once when its alert is
  already older than that and the group never flushed, e.g. after a restart), then
  flushes every ``group_interval``;
- silences and inhibition are applied at flush time;
- per integration a notification log entry (firing set, resolved set, time) decides:
  no entry -> notify only if something fires (a flap inside group_wait sends nothing);
  a firing alert not notified before -> notify; nothing firing but the last
  notification had firing alerts -> "all resolved" (recorded even with
  send_resolved off); a new resolve with send_resolved -> notify; else repeat after
  ``repeat_interval``;
- after a successful flush resolved alerts leave the group; an empty group goes away.
A failed delivery writes no entry, so the next group_interval tick retries it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from spanline.alerter.evaluate import Transition
from spanline.alerter.routing import RoutePlan, Router


@dataclass(frozen=True, slots=True)
class Alert:
    fingerprint: str
    rule: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    ends_at: float = 0.0
    value: float = 0.0
    threshold: float = 0.0
    version: int = 0

    @property
    def firing(self) -> bool:
        return self.ends_at == 0.0


@dataclass(frozen=True, slots=True)
class NflogEntry:
    firing: frozenset[str]
    resolved: frozenset[str]
    at: float
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Integration:
    """One way a receiver delivers (receiver ``oncall`` may have a Slack and a PagerDuty one)."""

    id: str
    receiver: str
    kind: str
    send_resolved: bool = True


@dataclass(frozen=True, slots=True)
class Notification:
    group_key: str
    group_labels: dict[str, str]
    integration: Integration
    firing: list[Alert]
    resolved: list[Alert]
    previous: NflogEntry | None
    send: bool
    """False when only the log must be updated ("all resolved" with send_resolved off)."""

    @property
    def status(self) -> str:
        return "firing" if self.firing else "resolved"

    @property
    def nflog_key(self) -> str:
        return f"{self.integration.id}|{self.group_key}"


@dataclass(slots=True)
class AggGroup:
    key: str
    plan: RoutePlan
    labels: dict[str, str]
    alerts: dict[str, Alert] = field(default_factory=dict)
    next_flush: float = 0.0
    has_flushed: bool = False
    in_flight: bool = False


@dataclass(slots=True)
class FlushJob:
    group: AggGroup
    snapshot: dict[str, Alert]
    notifications: list[Notification]
    resolved: frozenset[str] = frozenset()


def needs_update(
    entry: NflogEntry | None,
    firing: frozenset[str],
    resolved: frozenset[str],
    send_resolved: bool,
    repeat_s: float,
    now: float,
) -> bool:
    if entry is None:
        return bool(firing)
    if not firing <= entry.firing:
        return True
    if not firing:
        return bool(entry.firing)
    if send_resolved and not resolved <= entry.resolved:
        return True
    return entry.at < now - repeat_s


Muter = Callable[[Alert], bool]


class Dispatcher:
    def __init__(self, router: Router, integrations: dict[str, list[Integration]]) -> None:
        self.router = router
        self.integrations = integrations
        self.groups: dict[str, AggGroup] = {}
        self.nflog: dict[str, NflogEntry] = {}
        self._version = 0

    def on_transition(self, tr: Transition, now: float) -> None:
        plan = self.router.plan(tr.labels)
        key = plan.group_key(tr.labels)
        group = self.groups.get(key)
        if group is None:
            group = AggGroup(key, plan, plan.group_labels(tr.labels), next_flush=now + plan.group_wait_s)
            self.groups[key] = group
        self._version += 1
        alert = Alert(
            tr.fingerprint,
            tr.rule,
            tr.labels,
            tr.annotations,
            tr.starts_at,
            0.0 if tr.firing else tr.at,
            tr.value,
            tr.threshold,
            self._version,
        )
        group.alerts[tr.fingerprint] = alert
        if not group.has_flushed and alert.starts_at + plan.group_wait_s < now:
            group.next_flush = min(group.next_flush, now)

    def due(self, now: float, muted: Muter) -> list[FlushJob]:
        jobs = []
        for group in list(self.groups.values()):
            if group.in_flight or group.next_flush > now:
                continue
            jobs.append(self._flush(group, now, muted))
        return jobs

    def next_due(self) -> float | None:
        times = [g.next_flush for g in self.groups.values() if not g.in_flight]
        return min(times) if times else None

    def _flush(self, group: AggGroup, now: float, muted: Muter) -> FlushJob:
        group.next_flush = now + group.plan.group_interval_s
        group.in_flight = True
        snapshot = dict(group.alerts)
        live = [a for a in snapshot.values() if not muted(a)]
        firing_alerts = sorted((a for a in live if a.firing), key=lambda a: a.starts_at)
        resolved_alerts = sorted((a for a in live if not a.firing), key=lambda a: a.ends_at)
        firing = frozenset(a.fingerprint for a in firing_alerts)
        resolved = frozenset(a.fingerprint for a in resolved_alerts)
        notes = []
        if live:
            for integ in self.integrations.get(group.plan.receiver, []):
                key = f"{integ.id}|{group.key}"
                entry = self.nflog.get(key)
                if not needs_update(
                    entry, firing, resolved, integ.send_resolved, group.plan.repeat_interval_s, now
                ):
                    continue
                send = bool(firing_alerts) or integ.send_resolved
                notes.append(
                    Notification(
                        group.key,
                        group.labels,
                        integ,
                        firing_alerts,
                        resolved_alerts if integ.send_resolved else [],
                        entry,
                        send,
                    )
                )
        return FlushJob(group, snapshot, notes, resolved)

    def complete(self, job: FlushJob, delivered: dict[str, dict[str, str] | None], now: float) -> bool:
        """Record what was delivered (`delivered[nflog_key]` = receiver data or None on failure).

        Returns True when the whole flush succeeded (then resolved alerts leave the group).
        """
        group = job.group
        group.in_flight = False
        ok = True
        for note in job.notifications:
            data = delivered.get(note.nflog_key)
            if data is None:
                ok = False
                continue
            self.nflog[note.nflog_key] = NflogEntry(
                frozenset(a.fingerprint for a in note.firing),
                job.resolved,
                now,
                data,
            )
        if not ok:
            return False
        group.has_flushed = True
        for fp, alert in job.snapshot.items():
            current = group.alerts.get(fp)
            if not alert.firing and current is not None and current.version == alert.version:
                del group.alerts[fp]
        if not group.alerts:
            del self.groups[group.key]
        return True

    def abandon(self, job: FlushJob) -> None:
        job.group.in_flight = False

    def restore_firing(self, tr: Transition, now: float) -> None:
        """Put an alert known to be firing (checkpoint) back into its group after a restart."""
        self.on_transition(replace(tr, firing=True), now)


def make_inhibitor(rules: list[object], firing_labels: Callable[[], list[dict[str, str]]]) -> Muter:
    """A muter for inhibit rules (source/target matchers + equal), Alertmanager's semantics."""
    from spanline.alerter.rules import InhibitRule

    inhibit = [r for r in rules if isinstance(r, InhibitRule)]

    def muted(alert: Alert) -> bool:
        if not inhibit:
            return False
        sources = None
        for rule in inhibit:
            if not rule.target_matchers.matches(alert.labels):
                continue
            if sources is None:
                sources = firing_labels()
            both = rule.source_matchers.matches(alert.labels)
            for src in sources:
                if src is alert.labels or src == alert.labels:
                    continue
                if not rule.source_matchers.matches(src):
                    continue
                if both and rule.target_matchers.matches(src):
                    continue
                if all(src.get(k, "") == alert.labels.get(k, "") for k in rule.equal):
                    return True
        return False

    return muted
