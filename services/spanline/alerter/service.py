"""The alerter service: two stages on the shared consumer layer, one evaluator, one dispatcher.

- Stage one (group ``<prefix>-alerter``) reads ``spanline.scores``, folds each batch into
  partial aggregates and publishes them on ``spanline.alerter.partials`` keyed by
  notification group; it commits only after they are acknowledged.
- Stage two (group ``<prefix>-alerter-eval``) reads the partials of the partitions it
  owns, merges them into windows and publishes a checkpoint of every touched group on the
  compacted ``spanline.alerter.checkpoints`` (same key, so the same partition number)
  before committing: a restart loads the checkpoint and replays only what came after.
- A ticker evaluates the owned groups, records state changes on ``spanline.alerts``
  and runs Alertmanager's policy. Each notification is preceded by an intent record and
  followed by a result record on ``spanline.alerts``; the results are the notification log
  a restart (or the next owner of a partition) reloads, so nothing is sent twice after a
  clean hand-over and at most once more after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Sequence

from aiokafka import TopicPartition
from google.protobuf.message import DecodeError

from spanline.alerter import metrics
from spanline.alerter.collector import tune_for_alerter
from spanline.alerter.compiled import RuleIndex
from spanline.alerter.config import AlerterSettings
from spanline.alerter.dispatch import (
    Alert,
    Dispatcher,
    FlushJob,
    Integration,
    NflogEntry,
    Notification,
    make_inhibitor,
)
from spanline.alerter.engine import integrations_of
from spanline.alerter.evaluate import Evaluator, Transition
from spanline.alerter.fold import Folder, decode_partial
from spanline.alerter.metrics import NotificationOutcome
from spanline.alerter.receivers import (
    ChannelPacer,
    ConsoleSender,
    PagerDutySender,
    Result,
    RetryPolicy,
    SlackSender,
)
from spanline.alerter.routing import Router
from spanline.alerter.rules import RulesError, RulesFile, load_rules
from spanline.alerter.silences import SilenceSet
from spanline.alerter.topics_io import partition_of, read_to_end
from spanline.core.collector import gc_paused
from spanline.core.kafka import (
    BatchPolicy,
    DlqEntry,
    DlqReason,
    InMessage,
    Outcome,
    OutRecord,
    ProduceError,
    Producer,
    StreamConsumer,
)
from spanline.settings import Settings
from spanline.spans.score_records import unpack_scores
from spanline.v1.spanline_pb2 import AlertEvent, Score

log = logging.getLogger(__name__)

NFLOG_PREFIX = b"nflog|"
REC_INTENT = "notify_intent"
REC_RESULT = "notify_result"
META_RULE = "AlerterReceiverFailing"

Sender = SlackSender | PagerDutySender | ConsoleSender


def _invalid(score: Score) -> str:
    """Why a score cannot be folded ("" if it can)."""
    if not score.name:
        return "score has no name"
    if not (math.isfinite(score.score_value) and math.isfinite(score.sampling_weight)):
        # inf/NaN would poison every sum and sketch of its group (ddsketch raises on
        # them when raw samples spill into the sketch, in fold, merge or evaluation)
        return "score value or sampling weight is not finite"
    return ""


class FoldStrategy:
    """Stage one: scores -> partials. Stateless between batches."""

    def __init__(self, folder: Folder, partials_topic: str) -> None:
        self.folder = folder
        self.topic = partials_topic
        self._sources: dict[int, str] = {}
        """Score partition -> its key in a partial's ``src`` (made once, not per score)."""

    async def process(self, batch: Sequence[InMessage]) -> Outcome:
        with gc_paused():
            return self._process(batch)

    def _process(self, batch: Sequence[InMessage]) -> Outcome:
        dlq: list[DlqEntry] = []
        fold = self.folder.fold
        sources = self._sources
        n = 0
        for msg in batch:
            try:
                scores = unpack_scores(msg.value)  # one Score, or a trace's ScoreSet
            except DecodeError:
                dlq.append(
                    DlqEntry(
                        msg, DlqReason.DECODE_ERROR, "value is not a spanline.v1.Score or ScoreSet protobuf"
                    )
                )
                continue
            src = sources.get(msg.partition)
            if src is None:
                src = sources[msg.partition] = str(msg.partition)
            invalid = ""
            for score in scores:
                problem = _invalid(score)
                if problem:
                    invalid = invalid or problem
                    continue
                t = score.time_unix_nano / 1e9 if score.time_unix_nano else msg.timestamp_ms / 1000.0
                fold(score, t, src, msg.offset)
                n += 1
            if invalid:
                # the valid scores of a set are folded; the record is kept whole for a look
                dlq.append(DlqEntry(msg, DlqReason.INVALID_SCORE, invalid))
        metrics.SCORES_FOLDED.inc(n)
        records = [OutRecord(self.topic, value, key.encode("utf-8")) for key, value in self.folder.drain()]
        return Outcome(records=records, dlq=dlq)

    async def close(self) -> None:
        return None


class MergeStrategy:
    """Stage two: partials -> windows of the owned groups, checkpointed before commit."""

    def __init__(self, service: AlerterService) -> None:
        self.service = service

    async def process(self, batch: Sequence[InMessage]) -> Outcome:
        with gc_paused():
            return self._process(batch)

    def _process(self, batch: Sequence[InMessage]) -> Outcome:
        svc = self.service
        now = time.time()
        touched: set[str] = set()
        dlq: list[DlqEntry] = []
        if batch and batch[-1].timestamp_ms > 0:
            # partial-aggregate lag: how long the newest partial in this batch waited for the merge
            metrics.PARTIAL_LAG_SECONDS.set(max(0.0, now - batch[-1].timestamp_ms / 1000.0))
        replayed = 0
        for msg in batch:
            try:
                part = decode_partial(msg.value)
            except (ValueError, KeyError, TypeError, IndexError):
                dlq.append(DlqEntry(msg, DlqReason.DECODE_ERROR, "value is not an alerter partial"))
                continue
            if svc.evaluator.merge(part.group_key, part.src, part.entries, now):
                touched.add(part.group_key)
            else:
                replayed += 1
        metrics.PARTIALS_MERGED.labels("applied").inc(len(batch) - len(dlq) - replayed)
        metrics.PARTIALS_MERGED.labels("replayed").inc(replayed)
        late = svc.evaluator.late_dropped
        if late:
            metrics.LATE_DROPPED.inc(late)
            svc.evaluator.late_dropped = 0
        return Outcome(records=[svc.checkpoint_record(g) for g in touched], dlq=dlq)

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        parts = {tp.partition for tp in assigned if tp.topic == self.service.topics.alerter_partials}
        await self.service.load_partitions(parts)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        parts = {tp.partition for tp in revoked if tp.topic == self.service.topics.alerter_partials}
        await self.service.release_partitions(parts)

    async def close(self) -> None:
        return None


class AlerterService:
    name = "alerter"

    def __init__(self, settings: Settings, rules: RulesFile, environ: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.cfg: AlerterSettings = settings.alerter
        self.topics = settings.topics
        self.rules = rules
        self.index = RuleIndex.from_rules(rules)
        if self.cfg.eval_interval_s is not None:
            self.index.eval_interval_s = self.cfg.eval_interval_s
        self.router = Router.from_rules(rules)
        self.router.group_wait_override = self.cfg.group_wait_s
        self.evaluator = Evaluator(self.index.by_rule())
        self.integrations = integrations_of(rules)
        metrics.create_known_series(
            (i.receiver, i.kind) for items in self.integrations.values() for i in items
        )
        self.dispatcher = Dispatcher(self.router, self.integrations)
        self.silences = SilenceSet()
        self._muted_by_inhibition = make_inhibitor(list(rules.inhibit_rules), self._firing_labels)
        self.senders = self._build_senders(rules, environ if environ is not None else dict(os.environ))
        self.producer = Producer(settings.kafka)
        kafka = settings.kafka
        self.stage1 = StreamConsumer(
            settings=kafka,
            topics=[self.topics.scores],
            group_id=self.topics.group(kafka, "alerter"),
            strategy=FoldStrategy(Folder(self.index, self.router), self.topics.alerter_partials),
            producer=self.producer,
            service="alerter",
            policy=BatchPolicy(
                max_records=self.cfg.fold_batch_max_records, max_wait_s=self.cfg.fold_batch_max_wait_s
            ),
        )
        self.stage2 = StreamConsumer(
            settings=kafka,
            topics=[self.topics.alerter_partials],
            group_id=self.topics.group(kafka, "alerter-eval"),
            strategy=MergeStrategy(self),
            producer=self.producer,
            service="alerter",
            policy=BatchPolicy(max_records=2_000, max_wait_s=0.05),
        )
        self.owned: set[int] = set()
        self._stopping = asyncio.Event()
        # Set while partitions change hands: no evaluation and no new delivery may start,
        # so the groups being handed over have no notification in flight.
        self._handover = 0
        self._deliveries: set[asyncio.Task[None]] = set()
        self._failures: dict[str, int] = {}
        self._last_checkpoint = time.monotonic()
        self.notified: list[tuple[str, str, int, int]] = []  # (integration, status, firing, resolved)

    # ----------------------------------------------------------------- construction
    def _build_senders(self, rules: RulesFile, environ: dict[str, str]) -> dict[str, Sender]:
        senders: dict[str, Sender] = {}
        pacer = ChannelPacer(self.cfg.slack_min_post_interval_s)
        by_name = {r.name: r for r in rules.receivers}
        for items in self.integrations.values():
            for integ in items:
                if integ.kind == "console":
                    senders[integ.id] = ConsoleSender(integ.id)
                    continue
                recv = by_name[integ.receiver]
                index = int(integ.id.rsplit("/", 1)[1])
                if integ.kind == "slack":
                    senders[integ.id] = SlackSender(integ.id, recv.slack[index], environ, pacer)
                else:
                    senders[integ.id] = PagerDutySender(
                        integ.id, recv.pagerduty[index], environ, self.cfg.pagerduty_429_backoff_s
                    )
        return senders

    # ----------------------------------------------------------------- component
    async def start(self) -> None:
        """Nothing to bind: both consumers connect inside run()."""

    def ready(self) -> bool:
        return self.stage1.ready and self.stage2.ready

    async def stop(self) -> None:
        self._stopping.set()
        self.stage1.stop()
        self.stage2.stop()

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self.stage1.run(), name="alerter-fold"),
            asyncio.create_task(self.stage2.run(), name="alerter-merge"),
            asyncio.create_task(self._ticker(), name="alerter-ticker"),
            asyncio.create_task(self._silence_loop(), name="alerter-silences"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                if t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            self._stopping.set()
            self.stage1.stop()
            self.stage2.stop()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(t, 30)
            await self._wait_deliveries(30)
            with contextlib.suppress(Exception):
                await self._checkpoint_dirty(force=True)
            for sender in self.senders.values():
                if isinstance(sender, PagerDutySender):
                    await sender.close()
            await self.producer.stop()

    # ----------------------------------------------------------------- ownership
    def _partition(self, group_key: str) -> int:
        return partition_of(group_key.encode("utf-8"), self.topics.partitions)

    async def load_partitions(self, parts: set[int]) -> None:
        """Take over groups: checkpoint, notification log, then re-arm their timers."""
        if not parts:
            return
        self._handover += 1
        try:
            await self._load_partitions(parts)
        finally:
            self._handover -= 1

    async def _load_partitions(self, parts: set[int]) -> None:
        now = time.time()
        kafka = self.settings.kafka
        latest: dict[bytes, bytes] = {}
        for key, value in await read_to_end(kafka, self.topics.alerter_checkpoints, sorted(parts)):
            if key is None:
                continue
            if value:
                latest[key] = value
            else:
                latest.pop(key, None)
        for value in latest.values():
            try:
                self.evaluator.load_group(json.loads(value))
            except (ValueError, KeyError, TypeError):
                log.warning("unreadable checkpoint skipped")
        labels_of: dict[str, dict[str, str]] = {}
        intents: set[bytes] = set()
        for key, value in await read_to_end(kafka, self.topics.alerts):
            if not key or not key.startswith(NFLOG_PREFIX) or not value:
                continue
            try:
                ev = AlertEvent.FromString(value)
                body = json.loads(ev.summary)
            except (DecodeError, ValueError):
                continue
            group_key = body["group_key"]
            if self._partition(group_key) not in parts:
                continue
            if ev.labels.get("spanline.record") == REC_INTENT:
                intents.add(key)
                continue
            intents.discard(key)
            self.dispatcher.nflog[body["nflog_key"]] = NflogEntry(
                frozenset(body["firing"]), frozenset(body["resolved"]), float(body["at"]), dict(body["data"])
            )
            labels_of.update(body.get("labels", {}))
        if intents:
            log.warning(
                "notifications interrupted before their result was recorded; the policy re-sends them once",
                extra={"count": len(intents)},
            )
        self.owned |= parts
        firing_now: set[str] = set()
        max_window = 0.0
        for group in self.evaluator.groups.values():
            for fp, series in group.series.items():
                max_window = max(max_window, series.rule.window_s)
                if series.state == "firing":
                    firing_now.add(fp)
                    self.dispatcher.restore_firing(self._transition(group.key, fp, True, now), now)
        for entry in list(self.dispatcher.nflog.values()):
            for fp in entry.firing - firing_now:
                lbl = labels_of.get(fp)
                if lbl is None:
                    continue
                plan = self.router.plan(lbl)
                tr = Transition(
                    plan.group_key(lbl), fp, lbl.get("alertname", ""), lbl, {}, False, now, 0.0, math.nan, 0.0
                )
                self.dispatcher.on_transition(tr, now)
        self.evaluator.hold_until = max(self.evaluator.hold_until, now + max_window)
        metrics.OWNED_GROUPS.set(len(self.evaluator.groups))
        log.info(
            "alerter partitions loaded",
            extra={"partitions": sorted(parts), "groups": len(self.evaluator.groups)},
        )

    async def release_partitions(self, parts: set[int]) -> None:
        if not parts:
            return
        self._handover += 1
        try:
            await self._release_partitions(parts)
        finally:
            self._handover -= 1

    async def _release_partitions(self, parts: set[int]) -> None:
        await self._wait_deliveries(60)
        gone = [g for g in self.evaluator.groups if self._partition(g) in parts]
        records = [self.checkpoint_record(g) for g in gone]
        with contextlib.suppress(ProduceError):
            await self.producer.send_all(records)
        for g in gone:
            del self.evaluator.groups[g]
        for key in [k for k, ag in self.dispatcher.groups.items() if self._partition(ag.key) in parts]:
            del self.dispatcher.groups[key]
        for key in [k for k in self.dispatcher.nflog if self._partition(k.split("|", 1)[1]) in parts]:
            del self.dispatcher.nflog[key]
        self.owned -= parts
        metrics.OWNED_GROUPS.set(len(self.evaluator.groups))

    # ----------------------------------------------------------------- state records
    def checkpoint_record(self, group_key: str) -> OutRecord:
        group = self.evaluator.groups[group_key]
        group.dirty = False
        body = json.dumps(self.evaluator.group_to_state(group), separators=(",", ":")).encode("utf-8")
        self._last_checkpoint = time.monotonic()
        metrics.CHECKPOINT_AGE.set(0)
        return OutRecord(self.topics.alerter_checkpoints, body, group_key.encode("utf-8"))

    async def _checkpoint_dirty(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_checkpoint < self.cfg.checkpoint_interval_s:
            return
        records = [self.checkpoint_record(g.key) for g in self.evaluator.groups.values() if g.dirty]
        if records:
            await self.producer.send_all(records)

    def _transition(self, group_key: str, fp: str, firing: bool, now: float) -> Transition:
        from spanline.alerter.evaluate import annotations_for

        series = self.evaluator.groups[group_key].series[fp]
        rule = series.rule
        value = series.last.value if series.last.value is not None else math.nan
        return Transition(
            group_key,
            fp,
            rule.name,
            series.labels,
            annotations_for(series),
            firing,
            now,
            series.active_at,
            value,
            rule.threshold.value if rule.threshold else (series.last.baseline or 0.0),
        )

    def _state_event(self, tr: Transition) -> OutRecord:
        ev = AlertEvent(
            fingerprint=tr.fingerprint,
            rule=tr.rule,
            project_id=tr.labels.get("project", ""),
            state=AlertEvent.FIRING if tr.firing else AlertEvent.RESOLVED,
            severity=tr.labels.get("severity", ""),
            summary=tr.annotations.get("summary", ""),
            value=0.0 if math.isnan(tr.value) else tr.value,
            threshold=tr.threshold,
            time_unix_nano=int(tr.at * 1e9),
            labels=tr.labels,
        )
        return OutRecord(self.topics.alerts, ev.SerializeToString(), tr.fingerprint.encode("ascii"))

    def _nflog_event(
        self, kind: str, note: Notification, resolved: frozenset[str], data: dict[str, str]
    ) -> OutRecord:
        now = time.time()
        body = {
            "nflog_key": note.nflog_key,
            "group_key": note.group_key,
            "firing": sorted(a.fingerprint for a in note.firing),
            "resolved": sorted(resolved),
            "at": now,
            "data": data,
            "labels": {a.fingerprint: a.labels for a in note.firing},
        }
        first = (note.firing or note.resolved)[:1]
        ev = AlertEvent(
            fingerprint="nflog:" + note.nflog_key,
            rule=first[0].rule if first else "",
            project_id=note.group_labels.get("project", ""),
            summary=json.dumps(body, separators=(",", ":"), sort_keys=True),
            time_unix_nano=int(now * 1e9),
            labels={
                "spanline.record": kind,
                "spanline.integration": note.integration.id,
                "spanline.status": note.status,
            },
        )
        return OutRecord(
            self.topics.alerts, ev.SerializeToString(), NFLOG_PREFIX + note.nflog_key.encode("utf-8")
        )

    # ----------------------------------------------------------------- ticking
    def _firing_labels(self) -> list[dict[str, str]]:
        return [s.labels for _, s in self.evaluator.firing()]

    def _muted(self, alert: Alert) -> bool:
        return self.silences.mutes(alert.labels, time.time()) or self._muted_by_inhibition(alert)

    async def _ticker(self) -> None:
        next_eval = 0.0
        while not self._stopping.is_set():
            now = time.time()
            if self._handover:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.cfg.tick_s)
                continue
            try:
                if now >= next_eval:
                    next_eval = now + self.index.eval_interval_s
                    await self.evaluate_once(now)
                await self._checkpoint_dirty()
            except ProduceError as exc:
                log.warning("alert state not recorded yet; retrying", extra={"error": exc.reason})
            metrics.CHECKPOINT_AGE.set(time.monotonic() - self._last_checkpoint)
            for job in self.dispatcher.due(time.time(), self._muted):
                if self._partition(job.group.key) not in self.owned:
                    # created by an evaluation that raced a hand-over: the new owner notifies
                    self.dispatcher.abandon(job)
                    self.dispatcher.groups.pop(job.group.key, None)
                    continue
                task = asyncio.create_task(self._deliver(job))
                self._deliveries.add(task)
                task.add_done_callback(self._deliveries.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.cfg.tick_s)

    async def evaluate_once(self, now: float) -> list[Transition]:
        transitions = self.evaluator.evaluate(now)
        states = {"inactive": 0, "pending": 0, "firing": 0}
        by_rule: dict[str, int] = {}
        for group in self.evaluator.groups.values():
            for s in group.series.values():
                states[s.state] += 1
                by_rule[s.rule.name] = by_rule.get(s.rule.name, 0) + 1
        for state, n in states.items():
            metrics.ALERTS.labels(state).set(n)
        for rule, n in by_rule.items():
            metrics.EVALUATIONS.labels(rule).inc(n)
        if not transitions:
            return transitions
        records = [self._state_event(tr) for tr in transitions]
        records += [self.checkpoint_record(g) for g in {tr.group_key for tr in transitions}]
        try:
            await self.producer.send_all(records)
        finally:
            for tr in transitions:
                metrics.TRANSITIONS.labels(tr.rule, "firing" if tr.firing else "resolved").inc()
                self.dispatcher.on_transition(tr, now)
        return transitions

    async def _silence_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                fresh = SilenceSet()
                for key, value in await read_to_end(
                    self.settings.kafka, self.topics.alerter_silences, timeout_s=10
                ):
                    fresh.apply(value, key)
                self.silences = fresh
            except Exception as exc:
                log.warning("silences not refreshed", extra={"error": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.cfg.silence_refresh_s)

    async def _wait_deliveries(self, timeout_s: float) -> None:
        if self._deliveries:
            await asyncio.wait(list(self._deliveries), timeout=timeout_s)

    # ----------------------------------------------------------------- delivery
    def _policy(self, note: Notification) -> RetryPolicy:
        plan = self.router.plan(note.firing[0].labels if note.firing else note.resolved[0].labels)
        budget = self.cfg.delivery_timeout_s or max(plan.group_interval_s, 10.0)
        return RetryPolicy(budget, self.cfg.retry_initial_s, self.cfg.retry_max_s)

    async def _deliver(self, job: FlushJob) -> None:
        delivered: dict[str, dict[str, str] | None] = {}
        for note in job.notifications:
            key = note.nflog_key
            integ = note.integration
            try:
                if not note.send:
                    await self.producer.send_all([self._nflog_event(REC_RESULT, note, job.resolved, {})])
                    delivered[key] = {}
                    metrics.NOTIFICATIONS.labels(integ.receiver, integ.kind, NotificationOutcome.LOGGED).inc()
                    continue
                await self.producer.send_all([self._nflog_event(REC_INTENT, note, job.resolved, {})])
            except ProduceError as exc:
                log.warning("intent not recorded; notification deferred", extra={"error": exc.reason})
                delivered[key] = None
                continue
            started = time.monotonic()
            result = await self.senders[integ.id].send(note, self._policy(note))
            metrics.DELIVERY_SECONDS.labels(integ.kind).observe(time.monotonic() - started)
            if result.ok:
                delivered[key] = result.data
                self.notified.append((integ.id, note.status, len(note.firing), len(note.resolved)))
                metrics.NOTIFICATIONS.labels(integ.receiver, integ.kind, NotificationOutcome.SENT).inc()
                self._failures[integ.id] = 0
                with contextlib.suppress(ProduceError):
                    await self.producer.send_all(
                        [self._nflog_event(REC_RESULT, note, job.resolved, result.data)]
                    )
            else:
                delivered[key] = None
                outcome = NotificationOutcome.REJECTED if result.permanent else NotificationOutcome.FAILED
                metrics.NOTIFICATIONS.labels(integ.receiver, integ.kind, outcome).inc()
                await self._count_failure(integ, result)
        self.dispatcher.complete(job, delivered, time.time())

    async def _count_failure(self, failing: Integration, result: Result) -> None:
        n = self._failures.get(failing.id, 0) + 1
        self._failures[failing.id] = n
        if n != self.cfg.meta_alert_after_failures:
            return
        metrics.META_ALERTS.inc()
        log.error(
            "receiver keeps failing; sending a meta-alert to the other receivers",
            extra={"integration": failing.id, "status": result.status, "failures": n},
        )
        now = time.time()
        labels = {"alertname": META_RULE, "integration": failing.id, "severity": "critical"}
        alert = Alert(
            "meta-" + failing.id,
            META_RULE,
            labels,
            {
                "summary": f"alert receiver {failing.id} failed {n} times in a row "
                f"(last status {result.status})"
            },
            now,
        )
        others = [i for items in self.integrations.values() for i in items if i.id != failing.id]
        seen: set[str] = set()
        for integ in others:
            if integ.id in seen or integ.id not in self.senders:
                continue
            seen.add(integ.id)
            note = Notification(
                f"meta|{failing.id}", {"alertname": META_RULE}, integ, [alert], [], None, True
            )
            sent = await self.senders[integ.id].send(
                note, RetryPolicy(10.0, self.cfg.retry_initial_s, self.cfg.retry_max_s)
            )
            if sent.ok:
                self.notified.append((integ.id, "meta", 1, 0))


def build(settings: Settings) -> AlerterService:
    """The service of ``spanline run alerter``: its own process, so it sets the collector too."""
    try:
        rules = load_rules(settings.alerter.rules_file)
    except RulesError as exc:
        raise RuntimeError(str(exc)) from None
    service = AlerterService(settings, rules)
    tune_for_alerter()
    return service
