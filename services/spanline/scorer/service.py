"""The scorer service: ``spanline.redacted`` -> trace windows -> ``spanline.scores``.

receive (traces and logs, one consumer group) -> hold each message in its trace's window
(:mod:`spanline.scorer.windows`) -> when a window closes: decode it through the span
model, run every enabled heuristic (100% of traces), hand the trace to the judge stage
(only when configured; it runs in the background, so a slow or down endpoint never delays
deterministic scores) -> produce Score records keyed by trace id.

Offsets: :class:`ScorerStrategy` is a holding strategy; the shared consumer commits per
partition only below the oldest message still needed (an open window, or a trace whose
judge work is not finished), so a crash or a rebalance replays open traces, never loses
them. Score ids are hashes, so replayed scores replace themselves in every sink.
A message that is not OTLP protobuf (garbage, truncated) is dead-lettered on arrival.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData

from spanline.core.consumer_service import ConsumerService
from spanline.core.kafka import BatchPolicy, DlqEntry, InMessage, Outcome, OutRecord, Partition
from spanline.core.kafka.records import H_PROJECT, H_RECEIVED_AT, H_SCHEMA, H_SIGNAL, SCHEMA_VERSION
from spanline.scorer import metrics
from spanline.scorer.config import ScorerSettings
from spanline.scorer.decode import TraceDecoder
from spanline.scorer.heuristics import HEURISTICS
from spanline.scorer.judging.stage import JudgeStage
from spanline.scorer.scores import A_CLOSE_REASON, A_COMPLETE, A_LATE_FRAGMENT, KIND_HEURISTIC, new_score
from spanline.scorer.trace import CompletedTrace
from spanline.scorer.windows import ClosedTrace, TraceKey, TraceWindows
from spanline.settings import Settings
from spanline.spans.otlp_mirror import MirrorTracesData
from spanline.spans.pricing import PricingTable
from spanline.spans.row_errors import TIME_NS_MAX
from spanline.v1.spanline_pb2 import Score

log = logging.getLogger(__name__)

SERVICE = "scorer"


class BadMessage(ValueError):
    """A message that cannot be held: (dead-letter reason, detail without payload values)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def message_traces(msg: InMessage) -> tuple[bool, dict[bytes, bool]]:
    """(is a logs message, trace id -> whether an ended root span is in it).

    Parses with the wire mirror of ``TracesData`` (attributes stay bytes), which accepts
    exactly what the real schema accepts down to the span; ``BadMessage`` otherwise.
    """
    signal = msg.header(H_SIGNAL) or b"traces"
    if signal == b"logs":
        try:
            logs = LogsData.FromString(msg.value)
        except (DecodeError, ValueError):
            raise BadMessage("decode_error", "value is not an OTLP LogsData protobuf") from None
        out: dict[bytes, bool] = {}
        for rl in logs.resource_logs:
            for sl in rl.scope_logs:
                for rec in sl.log_records:
                    if len(rec.trace_id) == 16:
                        out.setdefault(rec.trace_id, False)
        return True, out
    if signal != b"traces":
        raise BadMessage("decode_error", "unknown spanline-signal header")
    try:
        data = MirrorTracesData.FromString(msg.value)
    except (DecodeError, ValueError):
        raise BadMessage("decode_error", "value is not an OTLP TracesData protobuf") from None
    found: dict[bytes, bool] = {}
    for rs in data.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                tid = span.trace_id
                if len(tid) != 16 or len(span.span_id) != 8:
                    raise BadMessage("parse_error", "span with a trace id not 16 or span id not 8 bytes")
                root = not span.parent_span_id and span.end_time_unix_nano > 0
                found[tid] = found.get(tid, False) or root
    return False, found


def heuristic_scores(trace: CompletedTrace, settings: ScorerSettings, now_ns: int) -> list[Score]:
    """Every enabled heuristic's score for the trace; fills ``trace.scores`` for the judge."""
    cfg = settings.heuristics_for(trace.project_id)
    disabled = set(cfg.disabled)
    attrs = {
        A_CLOSE_REASON: trace.close_reason,
        A_COMPLETE: "true" if trace.complete else "false",
    }
    if trace.late_fragment:
        attrs[A_LATE_FRAGMENT] = "true"
    span_id = trace.score_span_id
    out: list[Score] = []
    for h in HEURISTICS:
        if h.name in disabled:
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
        out.append(
            new_score(
                project_id=trace.project_id,
                trace_id=trace.trace_id,
                span_id=span_id,
                name=h.name,
                version=h.version,
                kind=KIND_HEURISTIC,
                value=result.value,
                label=result.label,
                explanation=result.explanation,
                time_unix_nano=now_ns,
                attributes=attrs,
            )
        )
    return out


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
        self.windows = TraceWindows(self.settings, clock)
        self.decoder = TraceDecoder(PricingTable.load(self.settings.pricing_file), self.settings.span_builder)
        self.judge = judge
        self._clock = clock
        self._pending: dict[int, _Pending] = {}
        self._next_id = 0
        self.close_open = False  # set on a stop that must score what is open (close_open_on_stop)
        self.last_input = time.monotonic()

    # -- HoldingStrategy -------------------------------------------------------------------
    async def process(self, batch: Sequence[InMessage]) -> Outcome:
        closed: list[ClosedTrace] = []
        dlq: list[DlqEntry] = []
        windows = self.windows
        if batch:
            self.last_input = time.monotonic()
        for msg in batch:
            try:
                is_log, traces = message_traces(msg)
            except BadMessage as exc:
                dlq.append(DlqEntry(msg, exc.reason, str(exc)))
                metrics.BAD_MESSAGES.labels(exc.reason).inc()
                log.warning(
                    "message dead-lettered",
                    extra={"reason": exc.reason, "partition": msg.partition, "offset": msg.offset},
                )
                continue
            if not traces:
                continue  # nothing of a trace in it (an empty export): nothing to hold
            project = msg.header_str(H_PROJECT, "default")
            received = msg.header_str(H_RECEIVED_AT)
            received_ns = int(received) if received.isdigit() else 0
            if not 0 < received_ns <= TIME_NS_MAX:
                received_ns = msg.timestamp_ms * 1_000_000
            for trace_id, has_root in traces.items():
                key: TraceKey = (project, trace_id)
                closed.extend(
                    windows.add(msg, key, is_log=is_log, has_root=has_root, received_ns=received_ns)
                )
        closed.extend(windows.due())
        outcome = self._score(closed)
        outcome.dlq[:0] = dlq
        return outcome

    async def tick(self) -> Outcome:
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
            traces, outcome.dlq = self.decoder.decode(closed)
            for c, trace in zip(closed, traces, strict=True):
                metrics.CLOSES.labels(c.reason).inc()
                metrics.TRACE_SPANS.observe(len(trace.spans))
                if not trace.spans and not trace.logs:
                    continue  # every message of it was dead-lettered
                scores = heuristic_scores(trace, self.settings, now_ns)
                outcome.records.extend(self._records(trace, scores))
                if self.judge is not None and not trace.late_fragment:
                    self._start_judge(trace, c)
        self._gauges()
        return outcome

    def _records(self, trace: CompletedTrace, scores: list[Score]) -> list[OutRecord]:
        headers = [
            (H_PROJECT, trace.project_id.encode("utf-8")),
            (H_SCHEMA, str(SCHEMA_VERSION).encode("ascii")),
        ]
        out = []
        for s in scores:
            metrics.SCORES.labels(s.name, s.evaluator_kind).inc()
            out.append(OutRecord(self.scores_topic, s.SerializeToString(), trace.trace_id, list(headers)))
        return out

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
                            [
                                (H_PROJECT, s.project_id.encode("utf-8")),
                                (H_SCHEMA, str(SCHEMA_VERSION).encode("ascii")),
                            ],
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
