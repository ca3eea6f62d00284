"""Coldtier: spanline.redacted + spanline.scores -> Iceberg ``spans`` and ``scores``.

receive (two topics, one consumer group) -> process (the span model's row builders, the
same Arrow batches the writer inserts; a message that cannot be parsed is dead-lettered)
-> emit (one Iceberg append per table, carrying the batch's Kafka offsets in its snapshot
summary). The shared consumer commits Kafka only after ``process`` returned, i.e. after
the Iceberg commit; on (re)assignment the consumer seeks to the offsets of the current
snapshots, and a message below them that Kafka still hands out (fetched from the committed
offset before the seek) is skipped, so a crash between the two commits neither loses nor
duplicates a row.

Payloads stay inline (no claim check): the cold copy must be complete on its own, for
archives and for the years the object store may not keep.

Maintenance and erasure jobs run in this process between batches (one lock), so they
never race the appends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiokafka import TopicPartition

from spanline.coldtier import metrics
from spanline.coldtier.commit import AlreadyStored, append_batch
from spanline.coldtier.governance import GovernanceStore, LedgerCache
from spanline.coldtier.ledger_filter import drop_erased
from spanline.coldtier.offsets import (
    Offsets,
    already_stored,
    batch_offsets,
    first_offsets,
    merge,
    table_offsets,
)
from spanline.coldtier.tables import SCORES, SPANS, ColdTable, ensure_tables, iceberg_arrow_from_columns
from spanline.core.consumer_service import ConsumerService
from spanline.core.kafka import (
    BatchPolicy,
    DlqEntry,
    DlqReason,
    InMessage,
    Outcome,
    ProduceError,
    Producer,
    RetryableError,
)
from spanline.core.kafka import metrics as kafka_metrics
from spanline.core.kafka.dlq import dlq_record, dlq_topic
from spanline.core.kafka.records import H_PROJECT, H_RECEIVED_AT, H_SIGNAL
from spanline.core.process_memory import bound_arrow_pool, bound_glibc_heap
from spanline.settings import Settings
from spanline.spans.pricing import PricingTable
from spanline.spans.row_errors import TIME_NS_MAX
from spanline.spans.rows import RowBuildError, ScoreRows, SpanRows

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table

log = logging.getLogger(__name__)


_Work = list[tuple[ColdTable, "pa.Table", Offsets, Offsets]]  # table, rows, next and first offsets


class _MessageFailed(Exception):
    def __init__(self, index: int, kind: str) -> None:
        super().__init__(index, kind)
        self.index = index
        self.kind = kind


class ColdStrategy:
    def __init__(
        self,
        settings: Settings,
        tables: dict[str, Table],
        governance: GovernanceStore,
        producer: Producer | None = None,
    ) -> None:
        """``producer``: dead letters are sent with it before the Iceberg commit (see
        ``_dead_letter``); without one they are returned for the consumer to send."""
        self.settings = settings
        self.producer = producer
        self.tables = tables
        self.governance = governance
        self.ledger = LedgerCache(governance, settings.coldtier.erasure_poll_s)
        self._spans = SpanRows(
            PricingTable.load(settings.writer.pricing_file), None, settings.writer.span_builder
        )
        self._redacted = settings.topics.redacted
        self._scores = settings.topics.scores
        self.lock = asyncio.Lock()  # appends, maintenance and erasure jobs take turns
        self._order: deque[int] = deque()  # batches not yet committed, in consumer order
        self._turn = asyncio.Condition()
        self._blocked = False  # the head batch failed to commit: later ones must wait for it
        self.commits = 0

    async def process(self, batch: Sequence[InMessage]) -> Outcome:
        """Commit strictly in consumer order, even if the consumer runs several batches at once.

        A snapshot's offsets are merged by maximum, so batch N+1 must never reach Iceberg
        before batch N: a later crash would resume past N's messages. Batches are identified
        by the list object the consumer passes again when it retries one.
        """
        key = id(batch)
        if key not in self._order:
            self._order.append(key)
        try:
            outcome = await self._process_in_order(batch, key)
        except RetryableError:
            raise
        except BaseException:
            if key in self._order:  # not retried as this batch (bug path): do not block others
                self._order.remove(key)
            raise
        finally:
            async with self._turn:
                self._turn.notify_all()
        return outcome

    async def _process_in_order(self, batch: Sequence[InMessage], key: int) -> Outcome:
        outcome, work = self._prepare(batch, frozenset())
        async with self._turn:
            while self._order[0] != key:
                if self._blocked:
                    raise RetryableError("an earlier batch is not committed yet")
                await self._turn.wait()
        async with self.lock:
            # Only now, after every earlier commit, do the snapshots say what is stored.
            stored = already_stored(batch, self._stored_offsets())
            if stored:
                log.info(
                    "skipping messages already in iceberg",
                    extra={"messages": len(stored), "batch": len(batch)},
                )
                outcome, work = self._prepare(batch, stored)
            await self._dead_letter(outcome)
            while True:
                try:
                    await asyncio.to_thread(self._commit_all, work)
                    break
                except AlreadyStored:
                    # Another instance holds these partitions now and stored part of the
                    # batch (the tables were refreshed by the failed attempt): keep the rest.
                    theirs = already_stored(batch, self._stored_offsets())
                    log.info(
                        "skipping messages another instance stored",
                        extra={"messages": len(theirs), "batch": len(batch)},
                    )
                    metrics.BATCHES_FENCED.inc()
                    _, work = self._prepare(batch, theirs)  # its dead letters went out above
                except Exception as exc:  # the rows are fine; the store is not: pause and retry
                    self._blocked = True
                    raise RetryableError(f"iceberg commit failed: {type(exc).__name__}") from exc
        self._blocked = False
        self._order.popleft()
        return outcome

    async def _dead_letter(self, outcome: Outcome) -> None:
        """Send the batch's dead letters before its offsets reach a snapshot.

        A restart resumes from the snapshot, past every message of a committed batch; a
        dead letter still unsent at a crash after the Iceberg commit would be lost. Sent
        first, a failed commit may send it again (at least once, as the DLQ promises)."""
        if self.producer is None or not outcome.dlq:
            return
        try:
            await self.producer.send_all([dlq_record(e, ColdtierService.name) for e in outcome.dlq])
        except ProduceError as exc:
            raise RetryableError(f"dead letters not acknowledged: {exc}") from exc
        for e in outcome.dlq:
            kafka_metrics.DLQ_RECORDS.labels(dlq_topic(e.message.topic), e.reason).inc()
        outcome.dlq.clear()

    def _prepare(self, batch: Sequence[InMessage], stored: frozenset[int]) -> tuple[Outcome, _Work]:
        """The batch's rows per table without the messages in ``stored``, and its outcome.

        Runs without an await, so the two batches in flight never interleave in
        ``self._spans``. A message that fails unexpectedly is dead-lettered and the rest
        rebuilt without it (the builder may hold part of it), instead of the consumer's
        one-by-one isolation, which would commit it after later batches."""
        failed: dict[int, str] = {}  # message index -> exception type
        while True:
            try:
                outcome, scores = self._build(batch, stored, failed)
                break
            except _MessageFailed as exc:
                failed[exc.index] = exc.kind
        outcome.dlq.extend(
            DlqEntry(batch[i], DlqReason.PROCESSING_ERROR, f"unhandled {kind}")
            for i, kind in sorted(failed.items())
        )
        kept = [m for i, m in enumerate(batch) if i not in stored]
        work = [
            (cold, rows, batch_offsets(batch, topic), first_offsets(kept, topic))
            for cold, rows, topic in (
                (SPANS, self._spans.take(), self._redacted),
                (SCORES, scores.take(), self._scores),
            )
        ]
        return outcome, work

    def _stored_offsets(self) -> Offsets:
        """Next offset per partition that the tables' current snapshots hold (in memory:
        refreshed on assignment and advanced by this instance's own commits)."""
        stored: Offsets = {}
        for table in self.tables.values():
            stored = merge(stored, table_offsets(table))
        return stored

    def _build(
        self, batch: Sequence[InMessage], stored: frozenset[int], failed: dict[int, str]
    ) -> tuple[Outcome, ScoreRows]:
        """Rows of every message not in ``stored`` or ``failed``; a malformed one is
        dead-lettered. Any other error names its message."""
        outcome = Outcome()
        self._spans.clear()
        scores = ScoreRows()
        for i, msg in enumerate(batch):
            if i in stored or i in failed:
                continue
            project = msg.header_str(H_PROJECT, "default")
            received = msg.header_str(H_RECEIVED_AT)
            received_ns = int(received) if received.isdigit() else 0
            if not 0 < received_ns <= TIME_NS_MAX:
                received_ns = msg.timestamp_ms * 1_000_000
            try:
                if msg.topic == self._redacted:
                    signal = msg.header(H_SIGNAL) or b"traces"
                    if signal == b"traces":
                        self._spans.add_bytes(msg.value, project, received_ns)
                    elif signal != b"logs":  # logs stay in the hot tier only (docs/storage.md)
                        raise RowBuildError("spans", "unknown spanline-signal header")
                elif msg.topic == self._scores:
                    scores.add_bytes(msg.value, project, received_ns)
            except RowBuildError as exc:
                outcome.dlq.append(DlqEntry(msg, DlqReason.PARSE_ERROR, str(exc)[:300]))
                log.warning(
                    "message dead-lettered",
                    extra={"reason": DlqReason.PARSE_ERROR, "topic": msg.topic, "offset": msg.offset},
                )
            except Exception as exc:
                log.error(
                    "message failed processing; dead-lettering",
                    extra={"error": type(exc).__name__, "topic": msg.topic, "offset": msg.offset},
                )
                raise _MessageFailed(i, type(exc).__name__) from exc
        return outcome, scores

    def _commit_all(self, work: _Work) -> None:
        ledger = self.ledger.sets()
        retries = self.settings.coldtier.commit_retries
        while work:  # consumed as it goes: a retried batch is rebuilt by _prepare
            cold, rows, offsets, first = work.pop(0)
            if rows.num_rows == 0:
                continue
            # the columns are the batch's only reference from here: each is freed as soon as
            # its sorted copy exists (the batch is held once, not twice, while it is sorted)
            columns = dict(zip(rows.column_names, rows.columns, strict=True))
            del rows
            data = iceberg_arrow_from_columns(columns, cold)
            data, dropped = drop_erased(data, ledger, self.governance.digest)
            if dropped:
                metrics.ROWS_DROPPED_ERASED.labels(cold.name).inc(dropped)
            if data.num_rows == 0:
                continue
            append_batch(self.tables[cold.name], cold.name, data, offsets, retries, first)
            self.commits += 1

    async def on_assigned(self, assigned: set[TopicPartition]) -> dict[TopicPartition, int]:
        """Resume from the offsets in the current snapshots (they may be ahead of Kafka's
        committed offsets when we died between the Iceberg and the Kafka commit)."""
        async with self.lock:
            return await asyncio.to_thread(self._snapshot_positions, assigned)

    def _snapshot_positions(self, assigned: set[TopicPartition]) -> dict[TopicPartition, int]:
        positions: dict[TopicPartition, int] = {}
        for table in self.tables.values():
            table.refresh()
            for topic, parts in table_offsets(table).items():
                for part, off in parts.items():
                    tp = TopicPartition(topic, part)
                    if tp in assigned:
                        positions[tp] = max(off, positions.get(tp, 0))
        if positions:
            log.info("resuming from iceberg snapshot offsets", extra={"partitions": len(positions)})
        return positions

    async def close(self) -> None:
        return None


class ColdtierService:
    name = "coldtier"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.inner: ConsumerService | None = None
        self.strategy: ColdStrategy | None = None
        self._background: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        from spanline.coldtier.maintenance import MaintenanceStep

        metrics.create_known_series(MaintenanceStep)
        bound_glibc_heap()  # before the worker threads allocate (core/process_memory.py)
        bound_arrow_pool()
        s = self.settings
        r = s.retention
        if r.allow_below_floor:
            log.warning(
                "cold retention below the legal floor by explicit override",
                extra={"cold_days": r.cold_days, "reason": r.below_floor_reason},
            )
        _, tables = await asyncio.to_thread(ensure_tables, s)
        governance = await asyncio.to_thread(GovernanceStore.from_settings, s)
        await asyncio.to_thread(governance.key)
        producer = Producer(s.kafka)
        self.strategy = ColdStrategy(s, tables, governance, producer)
        c = s.coldtier
        self.inner = ConsumerService(
            producer=producer,
            name=self.name,
            kafka=s.kafka,
            topics=[s.topics.redacted, s.topics.scores],
            group_id=s.topics.group(s.kafka, "coldtier"),
            strategy=self.strategy,
            policy=BatchPolicy(
                max_records=c.batch_max_messages,
                max_bytes=c.batch_max_bytes,
                max_wait_s=c.batch_max_wait_s,
                idle_s=c.batch_idle_s,
                idle_min_records=c.batch_idle_min_messages,
                idle_min_bytes=c.batch_idle_min_bytes,
                # With two, one batch is built while the other commits (order kept by
                # process(); what a snapshot already holds is skipped, see already_stored).
                max_inflight=c.batches_in_flight,
                release_heap_when_idle=True,
            ),
        )
        log.info("coldtier ready", extra={"tables": sorted(tables), "cold_days": r.cold_days})

    async def run(self) -> None:
        assert self.inner is not None, "start() first"
        self._background = asyncio.create_task(self._housekeeping(), name="coldtier-housekeeping")
        try:
            await self.inner.run()
        finally:
            self._stopping.set()
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._background

    async def _housekeeping(self) -> None:
        """Maintenance on its schedule and erasure jobs as they arrive, between batches."""
        from spanline.coldtier.jobs import run_pending_cold_erasures
        from spanline.coldtier.maintenance import run_maintenance

        assert self.strategy is not None
        strategy = self.strategy
        c = self.settings.coldtier
        next_maintenance = time.monotonic() + c.maintenance_interval_s if c.maintenance_interval_s else None
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), c.erasure_poll_s)
            if self._stopping.is_set():
                return
            try:
                async with strategy.lock:
                    await asyncio.to_thread(
                        run_pending_cold_erasures, self.settings, strategy.tables, strategy.governance
                    )
                if next_maintenance is not None and time.monotonic() >= next_maintenance:
                    async with strategy.lock:
                        report = await asyncio.to_thread(
                            run_maintenance, self.settings, strategy.tables, strategy.governance
                        )
                    log.info("maintenance done", extra={"report": report.as_dict()})
                    next_maintenance = time.monotonic() + c.maintenance_interval_s
            except Exception as exc:  # keep consuming; the next round tries again
                log.error(
                    "housekeeping failed", extra={"error": type(exc).__name__, "detail": str(exc)[:200]}
                )

    async def stop(self) -> None:
        self._stopping.set()
        if self.inner is not None:
            await self.inner.stop()

    def ready(self) -> bool:
        return self.inner is not None and self.inner.ready()


def build(settings: Settings) -> ColdtierService:
    return ColdtierService(settings)
