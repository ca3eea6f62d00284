"""The scorer service: ``spanline.redacted`` -> trace windows -> ``spanline.scores``.

receive (traces and logs, one consumer group) -> read each batch's span messages through
the span model once, into per-span facts (:mod:`spanline.scorer.facts`) -> hold them in
their trace's window (:mod:`spanline.scorer.windows`) -> when a window closes: run every
enabled heuristic on the facts (100% of traces), hand the trace, read whole from its held
messages, to the judge stage (only when configured; it runs in the background, so a slow
or down endpoint never delays deterministic scores) -> produce Score records keyed by
trace id.

Offsets: :class:`ScorerStrategy` is a holding strategy; the shared consumer commits per
partition only below the oldest message still needed (an open window, or a trace whose
judge work is not finished), so a crash or a rebalance replays open traces, never loses
them. Score ids are hashes, so replayed scores replace themselves in every sink.
A message that is not OTLP protobuf (garbage, truncated) is dead-lettered on arrival.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from spanline.core.collector import gc_paused
from spanline.core.consumer_service import ConsumerService
from spanline.core.kafka import BatchPolicy, DlqEntry, DlqReason, InMessage, Outcome, OutRecord, Partition
from spanline.core.kafka.records import H_PROJECT, H_RECEIVED_AT, H_SCHEMA, H_SIGNAL, SCHEMA_VERSION
from spanline.scorer import metrics
from spanline.scorer.config import ScorerSettings
from spanline.scorer.decode import TraceDecoder
from spanline.scorer.facts import FactsReader, SpanFacts, TraceFacts, facts_by_trace, log_feedback
from spanline.scorer.heuristics import HEURISTICS
from spanline.scorer.judging.stage import JudgeStage
from spanline.scorer.scores import (
    A_CLOSE_REASON,
    A_COMPLETE,
    A_LATE_FRAGMENT,
    KIND_HEURISTIC,
    trace_score_values,
)
from spanline.scorer.trace import CLOSE_REASONS, CloseReason, CompletedTrace
from spanline.scorer.windows import ClosedTrace, TraceKey, TraceWindows
from spanline.settings import Settings
from spanline.spans.attributes import attributes_dict, to_text
from spanline.spans.log_events import NotLogs, event_name, event_time_ns, log_records
from spanline.spans.otlp_mirror import MirrorTracesData
from spanline.spans.pricing import PricingTable
from spanline.spans.row_errors import TIME_NS_MAX, RowBuildError
from spanline.spans.score_records import pack_scores
from spanline.v1.spanline_pb2 import Score

log = logging.getLogger(__name__)

SERVICE = "scorer"
_SCHEMA = str(SCHEMA_VERSION).encode("ascii")
READ_CHUNK_ROWS = 2048
"""Spans read per builder pass within a batch: the pass's Arrow table (payloads included) and
the builder's buffers stay ~4 MB instead of growing with the batch (2,000 messages of
loadgen traces: ~17 MB each); a pass's fixed cost is ~0.3 ms."""


class BadMessage(ValueError):
    """A message that cannot be held: (dead-letter reason, detail without payload values)."""

    def __init__(self, reason: DlqReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


Feedback = dict[bytes, list[tuple[int, float]]]


def message_traces(msg: InMessage) -> tuple[bool, dict[bytes, bool]]:
    """(is a logs message, trace id -> whether an ended root span is in it).

    Parses with the wire mirror of ``TracesData`` (attributes stay bytes), which accepts
    exactly what the real schema accepts down to the span; ``BadMessage`` otherwise.
    """
    is_log, found, _ = read_message(msg)
    return is_log, found


def read_message(msg: InMessage) -> tuple[bool, dict[bytes, bool], Feedback]:
    """As :func:`message_traces`, plus per trace the feedback its log events carry."""
    signal = msg.header(H_SIGNAL) or b"traces"
    if signal == b"logs":
        try:
            records = log_records(msg.value)
        except NotLogs as exc:
            raise BadMessage(DlqReason.DECODE_ERROR, str(exc)) from None
        out: dict[bytes, bool] = {}
        feedback: Feedback = {}
        for rec in records:
            if len(rec.trace_id) == 16:
                out.setdefault(rec.trace_id, False)
                attrs = {k: to_text(v) for k, v in attributes_dict(rec.attributes).items()}
                value = log_feedback(event_name(rec, attrs), attrs)
                if value is not None:
                    feedback.setdefault(rec.trace_id, []).append((event_time_ns(rec), value))
        return True, out, feedback
    if signal != b"traces":
        raise BadMessage(DlqReason.DECODE_ERROR, "unknown spanline-signal header")
    try:
        data = MirrorTracesData.FromString(msg.value)
    except (DecodeError, ValueError):
        raise BadMessage(DlqReason.DECODE_ERROR, "value is not an OTLP TracesData protobuf") from None
    found: dict[bytes, bool] = {}
    for rs in data.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                tid = span.trace_id
                if len(tid) != 16 or len(span.span_id) != 8:
                    raise BadMessage(
                        DlqReason.PARSE_ERROR, "span with a trace id not 16 or span id not 8 bytes"
                    )
                root = not span.parent_span_id and span.end_time_unix_nano > 0
                found[tid] = found.get(tid, False) or root
    return False, found, {}


def heuristic_results(trace: TraceFacts, settings: ScorerSettings) -> list[tuple[str, str, float, str, str]]:
    """(name, version, value, label, explanation) of every enabled heuristic that applies;
    fills ``trace.scores`` for the judge."""
    cfg = settings.heuristics_for(trace.project_id)
    disabled = cfg.disabled
    out: list[tuple[str, str, float, str, str]] = []
    for h in HEURISTICS:
        if disabled and h.name in disabled:
            continue
        try:
            result = h.run(trace, cfg)
        except Exception:  # a heuristic bug costs its score, never the trace's other scores
            log.exception("heuristic failed", extra={"heuristic": h.name})
            metrics.HEURISTIC_ERRORS.labels(h.name).inc()
            continue
        if result is None:
            continue
        trace.scores[h.name] = result.value
        out.append((h.name, h.version, result.value, result.label, result.explanation))
    return out


def heuristic_score_values(trace: TraceFacts, settings: ScorerSettings, now_ns: int) -> list[bytes]:
    """The trace's serialized heuristic ``Score`` messages (see :func:`heuristic_results`)."""
    attrs = {
        A_CLOSE_REASON: trace.close_reason,
        A_COMPLETE: "true" if trace.complete else "false",
    }
    if trace.late_fragment:
        attrs[A_LATE_FRAGMENT] = "true"
    results = heuristic_results(trace, settings)
    if not results:
        return []
    return trace_score_values(
        project_id=trace.project_id,
        trace_id=trace.trace_id,
        span_id=trace.score_span_id,
        kind=KIND_HEURISTIC,
        time_unix_nano=now_ns,
        attributes=attrs,
        results=results,
    )


@dataclass(slots=True)
class _Pending:
    """Judge work of one trace: holds the trace's first offset until its scores are out."""

    task: asyncio.Task[list[Score]]
    partition: Partition
    first_offset: int
    started: float


class ScorerStrategy:
    """The :class:`~spanline.core.kafka.strategy.HoldingStrategy` of the scorer."""

    def __init__(
        self,
        settings: Settings,
        judge: JudgeStage | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings.scorer
        self.scores_topic = settings.topics.scores
        self.tick_interval_s = self.settings.tick_interval_s
        # the judge reads content: only then are the messages themselves held
        self.windows = TraceWindows(self.settings, clock, keep_messages=judge is not None)
        pricing = PricingTable.load(self.settings.pricing_file)
        self.reader = FactsReader(pricing, self.settings.span_builder, self.settings.heuristics_for)
        # the judge reads traces whole; without it no second builder (its key table is ~4 MB)
        self.decoder = TraceDecoder(pricing, self.settings.span_builder) if judge is not None else None
        self.judge = judge
        self._clock = clock
        self._pending: dict[int, _Pending] = {}
        self._next_id = 0
        # metric children resolved once (labels() costs a lock and a dict per call)
        self._closes = {r: metrics.CLOSES.labels(r) for r in CLOSE_REASONS}
        self._scored = {h.name: metrics.SCORES.labels(h.name, KIND_HEURISTIC) for h in HEURISTICS}
        self.close_open = False  # set on a stop that must score what is open (close_open_on_stop)
        self.last_input = time.monotonic()

    # -- HoldingStrategy -------------------------------------------------------------------
    async def process(self, batch: Sequence[InMessage]) -> Outcome:
        with gc_paused():
            return self._process(batch)

    def _process(self, batch: Sequence[InMessage]) -> Outcome:
        dlq: list[DlqEntry] = []
        windows = self.windows
        if batch:
            self.last_input = time.monotonic()
        # first pass: check every message, read the span messages in one builder pass
        # per message: (message, project, received at, log traces | None, log feedback, first row, rows)
        held: list[tuple[InMessage, str, int, dict[bytes, bool] | None, Feedback, int, int]] = []
        reader = self.reader
        row = 0
        trace_hex: list[str] = []
        facts: list[SpanFacts] = []
        for msg in batch:
            project = msg.header_str(H_PROJECT, "default")
            received = msg.header_str(H_RECEIVED_AT)
            received_ns = int(received) if received.isdigit() else 0
            if not 0 < received_ns <= TIME_NS_MAX:
                received_ns = msg.timestamp_ms * 1_000_000
            if (msg.header(H_SIGNAL) or b"traces") == b"traces":
                # span messages are read once, by the span model (ids, times, structure)
                try:
                    rows = reader.add(msg.value, project, received_ns)
                except RowBuildError as exc:
                    self._refused(dlq, msg, exc)
                    continue
                if rows:  # else nothing of a trace in it (an empty export): nothing to hold
                    held.append((msg, project, received_ns, None, {}, row, rows))
                    row += rows
                if len(reader) >= READ_CHUNK_ROWS:
                    hexes, more = reader.take()
                    trace_hex.extend(hexes)
                    facts.extend(more)
                continue
            try:
                _, traces, feedback = read_message(msg)
            except BadMessage as exc:
                self._bad(dlq, msg, exc)
                continue
            if traces:
                held.append((msg, project, received_ns, traces, feedback, 0, 0))
        hexes, more = reader.take()
        trace_hex.extend(hexes)
        facts.extend(more)
        closed: list[ClosedTrace] = []
        add = windows.add
        for msg, project, received_ns, log_traces, feedback, first_row, rows in held:
            if log_traces is not None:
                for trace_id in log_traces:
                    found = feedback.get(trace_id)
                    closed.extend(
                        add(
                            msg,
                            (project, trace_id),
                            is_log=True,
                            has_root=False,
                            received_ns=received_ns,
                            feedback=found,
                        )
                    )
                continue
            # a message may (against the contract) carry several traces: each gets its spans
            for tid_hex, spans in facts_by_trace(trace_hex, facts, first_row, rows).items():
                has_root = any(s.is_root and s.end_ns > 0 for s in spans)
                key: TraceKey = (project, bytes.fromhex(tid_hex))
                closed.extend(
                    add(msg, key, is_log=False, has_root=has_root, received_ns=received_ns, spans=spans)
                )
        closed.extend(windows.due())
        outcome = self._score(closed)
        outcome.dlq[:0] = dlq
        return outcome

    @staticmethod
    def _bad(dlq: list[DlqEntry], msg: InMessage, exc: BadMessage) -> None:
        dlq.append(DlqEntry(msg, exc.reason, str(exc)))
        metrics.BAD_MESSAGES.labels(exc.reason).inc()
        log.warning(
            "message dead-lettered",
            extra={"reason": exc.reason, "partition": msg.partition, "offset": msg.offset},
        )

    def _refused(self, dlq: list[DlqEntry], msg: InMessage, exc: RowBuildError) -> None:
        """A span message the span model refused: not OTLP or bad ids (a bad message, as
        :func:`read_message` names it), else a span the model refuses for another reason
        (nested garbage, bad times): the trace goes on without it."""
        try:
            read_message(msg)
        except BadMessage as bad:
            self._bad(dlq, msg, bad)
            return
        metrics.UNDECODABLE.inc()
        log.warning(
            "message not decodable by the span model; dead-lettered",
            extra={"partition": msg.partition, "offset": msg.offset},
        )
        dlq.append(DlqEntry(msg, DlqReason.PARSE_ERROR, str(exc)[:300]))

    async def tick(self) -> Outcome:
        with gc_paused():
            closed = self.windows.due()
            if self.close_open:
                closed.extend(self.windows.close_all("revoked"))
            outcome = self._score(closed)
        outcome.records.extend(await self._collect_judged(wait=self.close_open))
        return outcome

    def held_offsets(self) -> dict[Partition, int]:
        held = self.windows.held_offsets()
        for p in self._pending.values():
            if p.first_offset < held.get(p.partition, p.first_offset + 1):
                held[p.partition] = p.first_offset
        return held

    async def on_revoked(self, partitions: set[Partition]) -> None:
        gone = {(tp[0], tp[1]) for tp in partitions}
        dropped = self.windows.drop(gone)
        if dropped:
            metrics.DROPPED_ON_REVOKE.inc(len(dropped))
            log.info("open traces handed over with their partitions", extra={"traces": len(dropped)})
        for pid, p in list(self._pending.items()):
            if p.partition in gone:
                # not committed past: the new owner replays and judges the trace
                p.task.cancel()
                del self._pending[pid]
        self._gauges()

    async def close(self) -> None:
        for p in self._pending.values():
            p.task.cancel()
        self._pending.clear()
        if self.judge is not None:
            await self.judge.close()

    # -- scoring ---------------------------------------------------------------------------
    def _score(self, closed: list[ClosedTrace]) -> Outcome:
        outcome = Outcome()
        if closed:
            now_ns = time.time_ns()
            to_judge: list[tuple[ClosedTrace, TraceFacts]] = []
            records = outcome.records
            topic = self.scores_topic
            closes: Counter[CloseReason] = Counter()
            scored: Counter[str] = Counter()
            for c in closed:
                t = c.trace
                closes[c.reason] += 1
                metrics.TRACE_SPANS.observe(len(t.spans))
                trace = TraceFacts.of(
                    t.project_id,
                    t.trace_id,
                    t.spans,
                    t.feedback_logs,
                    c.reason,
                    late_fragment=t.late_fragment,
                    partition=t.partition[1],
                    size_bytes=t.size,
                )
                values = heuristic_score_values(trace, self.settings, now_ns)
                if values:
                    headers = [(H_PROJECT, trace.project_id.encode("utf-8")), (H_SCHEMA, _SCHEMA)]
                    # one record for the trace's scores (spans/score_records.py)
                    records.append(OutRecord(topic, pack_scores(values), trace.trace_id, headers))
                    scored.update(trace.scores.keys())
                if self.judge is not None and not trace.late_fragment:
                    to_judge.append((c, trace))
            for reason, n in closes.items():
                self._closes[reason].inc(n)
            for name, n in scored.items():
                self._scored[name].inc(n)
            if to_judge:
                self._judge_closed(to_judge)
        self._gauges()
        return outcome

    def _judge_closed(self, closed: list[tuple[ClosedTrace, TraceFacts]]) -> None:
        """Hand closed traces to the judge, read whole from their held messages (the judge
        reads content; the deterministic scores are already out)."""
        assert self.decoder is not None
        full, dlq = self.decoder.decode([c for c, _ in closed])
        if dlq:  # the same span model took them on arrival: not expected
            log.warning("held messages not decodable at close", extra={"messages": len(dlq)})
        for (c, facts), trace in zip(closed, full, strict=True):
            trace.scores = facts.scores
            self._start_judge(trace, c)

    def _start_judge(self, trace: CompletedTrace, c: ClosedTrace) -> None:
        assert self.judge is not None
        if len(self._pending) >= self.settings.pending_judge_max:
            metrics.JUDGE_ABANDONED.labels("queue_full").inc()
            return
        self._next_id += 1
        task = asyncio.get_running_loop().create_task(self.judge.evaluate(trace))
        self._pending[self._next_id] = _Pending(task, c.trace.partition, c.trace.first_offset, self._clock())

    async def _collect_judged(self, wait: bool) -> list[OutRecord]:
        if not self._pending:
            return []
        if wait:
            await asyncio.wait(
                [p.task for p in self._pending.values()], timeout=self.settings.pending_judge_timeout_s
            )
        records: list[OutRecord] = []
        now = self._clock()
        for pid, p in list(self._pending.items()):
            if p.task.done():
                del self._pending[pid]
                if p.task.cancelled() or p.task.exception() is not None:
                    metrics.JUDGE_ABANDONED.labels("failed").inc()
                    continue
                scores = p.task.result()
                if scores:
                    for s in scores:
                        metrics.SCORES.labels(s.name, s.evaluator_kind).inc()
                    records.extend(
                        OutRecord(
                            self.scores_topic,
                            s.SerializeToString(),
                            s.trace_id,
                            [(H_PROJECT, s.project_id.encode("utf-8")), (H_SCHEMA, _SCHEMA)],
                        )
                        for s in scores
                    )
            elif now - p.started > self.settings.pending_judge_timeout_s:
                p.task.cancel()
                del self._pending[pid]
                metrics.JUDGE_ABANDONED.labels("timeout").inc()
        metrics.JUDGE_PENDING.set(len(self._pending))
        return records

    def _gauges(self) -> None:
        metrics.OPEN_TRACES.set(len(self.windows))
        metrics.OPEN_BYTES.set(self.windows.open_bytes)
        metrics.JUDGE_PENDING.set(len(self._pending))
        late = self.windows.late_messages
        if late:
            metrics.LATE_SPANS.inc(late)
            self.windows.late_messages = 0

    @property
    def idle(self) -> bool:
        return not len(self.windows) and not self._pending


class ScorerService(ConsumerService):
    """The scorer component: the shared consumer around :class:`ScorerStrategy`."""

    def __init__(self, settings: Settings) -> None:
        s = settings.scorer
        judge = JudgeStage(s.judge) if s.judge.enabled else None
        self.strategy = ScorerStrategy(settings, judge)
        self._close_open_on_stop = s.close_open_on_stop
        super().__init__(
            name=SERVICE,
            kafka=settings.kafka,
            topics=[settings.topics.redacted],
            group_id=settings.topics.group(settings.kafka, SERVICE),
            strategy=self.strategy,
            # one batch at a time: the windows are state, batches must reach them in order
            policy=BatchPolicy(
                max_records=s.batch_max_records, max_wait_s=s.batch_max_wait_s, max_inflight=1
            ),
        )

    async def start(self) -> None:
        # what start-up built (modules, settings, tables) lives as long as the process: out
        # of the collector's sight, a full collection walks only what the windows hold
        # (measured: one full collection cost ~13 us per span of a 20k-span drain without)
        gc.collect()
        gc.freeze()
        await super().start()

    async def stop(self) -> None:
        if self._close_open_on_stop and self.consumer.ready:
            # `spanline up` stops the scorer once its producers stopped, without waiting for
            # its lag (open windows keep it above zero): consume what is left (no input for
            # a second = caught up), score what is open (reason `revoked`) on the next tick,
            # then stop; the in-memory broker would lose it otherwise
            strategy = self.strategy
            deadline = time.monotonic() + strategy.settings.pending_judge_timeout_s + 5
            while time.monotonic() - strategy.last_input < 1.0 and time.monotonic() < deadline:  # noqa: ASYNC110 - polled briefly on stop
                await asyncio.sleep(0.1)
            strategy.close_open = True
            while not strategy.idle and time.monotonic() < deadline and self.consumer.ready:  # noqa: ASYNC110 - state of another task, polled briefly on stop
                await asyncio.sleep(0.05)
            await asyncio.sleep(2 * strategy.tick_interval_s)  # the tick's records are committed
        self.consumer.stop()


def build(settings: Settings) -> ScorerService:
    return ScorerService(settings)
