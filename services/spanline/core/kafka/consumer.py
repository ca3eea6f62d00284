"""The consume -> process -> produce -> commit loop, written once for every service.

Commit policy: offsets advance only after the strategy returned and everything it asked
to produce (outputs and dead letters) was acknowledged. A dependency outage pauses the
assigned partitions and retries the same batch with backoff, so lag grows while memory
stays flat. An unexpected exception on a batch is isolated message by message; a
message that still fails is dead-lettered, so one poison record never stops a service.

A :class:`~spanline.core.kafka.strategy.HoldingStrategy` (it has ``held_offsets``) gets a
watermark commit instead: per partition, the end of what was processed, capped at the
oldest offset the strategy still holds, and a periodic ``tick`` so held state ages while
no message arrives. Every other strategy keeps commit-after-batch unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import cast

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from spanline.core.kafka import metrics
from spanline.core.kafka.connection import common_kwargs
from spanline.core.kafka.dlq import dlq_record, dlq_topic
from spanline.core.kafka.producer import ProduceError, Producer
from spanline.core.kafka.records import InMessage
from spanline.core.kafka.strategy import (
    DlqEntry,
    DlqReason,
    HoldingStrategy,
    Outcome,
    Partition,
    ProcessingStrategy,
    RetryableError,
)
from spanline.core.process_memory import release_free_heap
from spanline.core.settings import KafkaSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """When a batch is handed to the strategy: whichever limit is reached first."""

    max_records: int = 1_000
    max_bytes: int = 16 * 1024 * 1024
    max_wait_s: float = 0.1
    retry_initial_s: float = 0.2
    retry_max_s: float = 10.0
    # Batches processed concurrently. With 2, a sink builds batch N+1 while batch N's
    # write runs in a thread; commits stay strictly in batch order either way.
    max_inflight: int = 1
    # A batch of at least ``idle_min_records`` records or ``idle_min_bytes`` bytes (0: no
    # byte rule) is handed over once no record came for ``idle_s`` (0: never): a sink that
    # batches big for its storage (the coldtier's Iceberg commits) then does not hold the
    # end of a burst for its whole ``max_wait_s``, while a trickle still waits for the timer
    # rather than making tiny commits. Bytes say "not tiny" whatever the records hold (a
    # trace's scores are one record since they travel as a set).
    idle_s: float = 0.0
    idle_min_records: int = 1
    idle_min_bytes: int = 0
    # Give the heap's free pages back (core/process_memory.release_free_heap) once a batch
    # is committed and none is left in flight or buffered: for sinks whose batches are tens
    # of MB (writer, coldtier). Under a backlog the next batch would fault the same pages
    # in again, so only then.
    release_heap_when_idle: bool = False


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: StreamConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Hand the partitions over cleanly: finish and commit what we hold for them.
        await self._owner._flush_for_rebalance(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        hook = getattr(self._owner.strategy, "on_assigned", None)
        if hook is not None:
            # A strategy whose sink keeps its own offsets (the coldtier's Iceberg snapshots)
            # returns where to resume; the consumer seeks there instead of the committed offset.
            positions = await hook(assigned)
            consumer = self._owner._consumer
            if positions and consumer is not None:
                for tp, offset in positions.items():
                    consumer.seek(tp, offset)


class StreamConsumer:
    def __init__(
        self,
        *,
        settings: KafkaSettings,
        topics: Sequence[str],
        group_id: str,
        strategy: ProcessingStrategy,
        producer: Producer,
        service: str,
        policy: BatchPolicy | None = None,
        auto_offset_reset: str = "earliest",
    ) -> None:
        self.settings = settings
        self.topics = list(topics)
        metrics.create_consumer_series(self.topics)
        self.group_id = group_id
        self.strategy = strategy
        self.producer = producer
        self.service = service
        self.policy = policy or BatchPolicy()
        self._auto_offset_reset = auto_offset_reset
        self._consumer: AIOKafkaConsumer | None = None
        self._buffer: list[InMessage] = []
        self._buffer_bytes = 0
        self._record_bytes = 0.0  # mean size of a record in the last poll that returned any
        self._buffer_since = 0.0
        self._last_arrival = 0.0
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._running = False
        self._in_rebalance = False
        self._inflight: deque[tuple[asyncio.Task[bool], list[InMessage], float]] = deque()
        self._pauses = 0
        self.processed = 0
        # watermark commits (HoldingStrategy only): processed end and committed position
        self._holding: HoldingStrategy | None = (
            cast(HoldingStrategy, strategy) if callable(getattr(strategy, "held_offsets", None)) else None
        )
        self._processed_end: dict[Partition, int] = {}
        self._committed: dict[Partition, int] = {}
        self._next_tick = 0.0

    @property
    def ready(self) -> bool:
        return self._running and self._consumer is not None

    def stop(self) -> None:
        """Ask the loop to drain: stop fetching, flush, commit, return."""
        self._stopping.set()

    async def _connect(self) -> AIOKafkaConsumer:
        s = self.settings
        delay = self.policy.retry_initial_s
        while not self._stopping.is_set():
            consumer = AIOKafkaConsumer(
                **common_kwargs(s),
                group_id=self.group_id,
                enable_auto_commit=False,
                auto_offset_reset=self._auto_offset_reset,
                session_timeout_ms=s.session_timeout_ms,
                heartbeat_interval_ms=s.heartbeat_interval_ms,
                fetch_max_bytes=s.fetch_max_bytes,
                max_partition_fetch_bytes=max(s.max_request_size, 1024 * 1024),
                max_poll_records=s.max_poll_records,
            )
            try:
                await consumer.start()
                consumer.subscribe(self.topics, listener=_Listener(self))
                return consumer
            except (KafkaError, OSError) as exc:
                with contextlib.suppress(Exception):
                    await consumer.stop()
                log.warning(
                    "kafka consumer cannot connect, retrying",
                    extra={"error": type(exc).__name__, "retry_in_s": round(delay, 2)},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, self.policy.retry_max_s)
        raise asyncio.CancelledError

    async def run(self) -> None:
        try:
            self._consumer = await self._connect()
        except asyncio.CancelledError:
            return
        consumer = self._consumer
        self._running = True
        poll_cap = self.settings.max_poll_records
        log.info("consuming", extra={"topics": self.topics, "group": self.group_id})
        if self._holding is not None:
            self._next_tick = time.monotonic() + self._holding.tick_interval_s
        try:
            while not self._stopping.is_set():
                # at most a second a wait, so stop() is seen within a second (a sink with a
                # 30 s batch timer would otherwise take that long to drain)
                wait_ms = min(self._remaining_wait_ms(), 1000)
                if self._holding is not None:
                    wait_ms = max(0, min(wait_ms, int((self._next_tick - time.monotonic()) * 1000)))
                # one poll at most max_poll_records: the byte bound is checked between polls,
                # and a poll of a whole 50 000-message batch overshot it by ~100 MB; and at
                # most the records the byte bound still has room for at the size records had
                # in the last poll (a 2 000-record poll of heavy spans is ~26 MB: a 16 MiB
                # bound made 26 MB batches, a 32 MiB one two polls, 52 MB)
                room = max(1, min(self.policy.max_records - len(self._buffer), poll_cap, self._byte_room()))
                data = await consumer.getmany(timeout_ms=wait_ms, max_records=room)
                for tp, records in data.items():
                    if not records:
                        continue
                    self._last_arrival = time.monotonic()
                    if not self._buffer:
                        self._buffer_since = self._last_arrival
                    size = 0
                    for r in records:
                        msg = InMessage(
                            topic=r.topic,
                            partition=r.partition,
                            offset=r.offset,
                            key=r.key,
                            value=r.value if r.value is not None else b"",
                            headers=list(r.headers or ()),
                            timestamp_ms=r.timestamp or 0,
                        )
                        self._buffer.append(msg)
                        size += msg.size
                    # Counted per fetched partition, not per message: label lookups are not free.
                    self._buffer_bytes += size
                    self._record_bytes = size / len(records)
                    metrics.CONSUMED_RECORDS.labels(tp.topic).inc(len(records))
                    metrics.CONSUMED_BYTES.labels(tp.topic).inc(size)
                    self._record_lag(consumer, tp, records[-1].offset)
                if self._should_flush() or (self._inflight and self._inflight[0][0].done()):
                    async with self._lock:
                        await self._flush_locked()
                if self._holding is not None and time.monotonic() >= self._next_tick:
                    async with self._lock:
                        await self._tick_locked(self._holding)
            async with self._lock:
                await self._flush_locked(wait_all=True)
        finally:
            self._running = False
            with contextlib.suppress(Exception):
                await self.strategy.close()
            with contextlib.suppress(Exception):
                await consumer.stop()
            self._consumer = None
            log.info("consumer stopped", extra={"group": self.group_id, "processed": self.processed})

    def _byte_room(self) -> int:
        """Records that reach the byte bound at the last poll's record size, with a tenth
        more (records vary: a poll sized exactly would fall short about half the time and
        the batch would wait for one more poll); one before any record was seen, since a
        first poll of ``max_poll_records`` could overshoot the bound by any amount."""
        if self._record_bytes <= 0:
            return 1
        return math.ceil((self.policy.max_bytes - self._buffer_bytes) * 1.1 / self._record_bytes)

    def _remaining_wait_ms(self) -> int:
        if not self._buffer:
            return int(self.policy.max_wait_s * 1000) or 1
        p = self.policy
        now = time.monotonic()
        left = p.max_wait_s - (now - self._buffer_since)
        if self._idle_flush_allowed():
            left = min(left, p.idle_s - (now - self._last_arrival))
        return max(0, int(left * 1000))

    def _should_flush(self) -> bool:
        if not self._buffer:
            return False
        p = self.policy
        return (
            len(self._buffer) >= p.max_records
            or self._buffer_bytes >= p.max_bytes
            or time.monotonic() - self._buffer_since >= p.max_wait_s
            or (self._idle_flush_allowed() and time.monotonic() - self._last_arrival >= p.idle_s)
        )

    def _idle_flush_allowed(self) -> bool:
        """Whether the buffer is big enough to go after ``idle_s`` without input."""
        p = self.policy
        return p.idle_s > 0 and (
            len(self._buffer) >= p.idle_min_records or 0 < p.idle_min_bytes <= self._buffer_bytes
        )

    @staticmethod
    def _record_lag(consumer: AIOKafkaConsumer, tp: TopicPartition, last_offset: int) -> None:
        # highwater() after a fetch is what Tansu reports correctly; its end_offsets() is not.
        high = consumer.highwater(tp)
        if high is not None:
            metrics.LAG.labels(tp.topic, str(tp.partition)).set(max(0, high - last_offset - 1))

    async def _flush_for_rebalance(self, revoked: set[TopicPartition]) -> None:
        self._in_rebalance = True
        try:
            async with self._lock:
                await self._flush_locked(wait_all=True)
        finally:
            self._in_rebalance = False
        hook = getattr(self.strategy, "on_revoked", None)
        if hook is not None:
            await hook(revoked)
        for tp in revoked:
            self._processed_end.pop((tp.topic, tp.partition), None)
            self._committed.pop((tp.topic, tp.partition), None)
            # the new owner reports this partition's lag; a frozen value here would add a
            # phantom backlog to every sum over replicas (KEDA, the lag alerts)
            with contextlib.suppress(KeyError):
                metrics.LAG.remove(tp.topic, str(tp.partition))

    async def _tick_locked(self, holding: HoldingStrategy) -> None:
        """Let held state age: finish running batches, produce what the tick closed, commit."""
        await self._flush_locked(wait_all=True)
        self._next_tick = time.monotonic() + holding.tick_interval_s
        if await self._process_until_done([], holding.tick):
            await self._commit_watermark(holding)

    async def _flush_locked(self, wait_all: bool = False) -> None:
        """Start a batch from the buffer (if any), then commit finished batches in order.

        Waits for the oldest batch while `max_inflight` batches are running (or for all
        of them when draining). A batch that could not complete (stop requested while a
        dependency is down) ends committing: later batches hold later offsets of the same
        partitions, so committing them would skip it.
        """
        if self._buffer and (self._should_flush() or wait_all):
            batch, self._buffer, self._buffer_bytes = self._buffer, [], 0
            task = asyncio.create_task(self._process_until_done(batch, None))
            self._inflight.append((task, batch, time.monotonic()))
        while self._inflight and (
            wait_all or len(self._inflight) >= self.policy.max_inflight or self._inflight[0][0].done()
        ):
            task, batch, started = self._inflight.popleft()
            if not await task:
                for rest, _, _ in self._inflight:
                    await rest
                self._inflight.clear()
                return
            await self._commit(batch)
            self.processed += len(batch)
            metrics.BATCH_SIZE.observe(len(batch))
            metrics.BATCH_SECONDS.observe(time.monotonic() - started)
            del task, batch  # the last references to the messages before the heap is trimmed
            if self.policy.release_heap_when_idle and not self._inflight and not self._buffer:
                release_free_heap()

    def _pause(self) -> None:
        self._pauses += 1
        if self._pauses == 1 and self._consumer is not None:
            self._consumer.pause(*self._consumer.assignment())
            metrics.PAUSED.set(1)

    def _resume(self) -> None:
        self._pauses -= 1
        if self._pauses == 0 and self._consumer is not None:
            self._consumer.resume(*self._consumer.assignment())
            metrics.PAUSED.set(0)

    async def _process_until_done(
        self, batch: list[InMessage], produce: Callable[[], Awaitable[Outcome]] | None
    ) -> bool:
        """True once the batch's outputs are acknowledged; False if asked to stop first
        (the batch stays uncommitted and is replayed by whoever owns the partition next).
        ``produce`` replaces the strategy's ``process`` (a holding strategy's tick). A holding
        strategy's exceptions are not isolated message by message (its state already took
        part of the batch): they stop the consumer uncommitted, and the batch is replayed."""
        delay = self.policy.retry_initial_s
        paused = False
        outcome: Outcome | None = None
        try:
            while True:
                try:
                    if self._holding is not None:
                        # state moved on when it returned: a failed send is retried with the
                        # same outcome, never by processing the batch a second time
                        if outcome is None:
                            outcome = await (
                                produce() if produce is not None else self.strategy.process(batch)
                            )
                    else:
                        outcome = await self._process_isolating(batch)
                    await self.producer.send_all(outcome.records)
                    if outcome.dlq:
                        await self.producer.send_all([dlq_record(e, self.service) for e in outcome.dlq])
                        for e in outcome.dlq:
                            metrics.DLQ_RECORDS.labels(dlq_topic(e.message.topic), e.reason).inc()
                    return True
                except (RetryableError, ProduceError) as exc:
                    metrics.RETRIES.inc()
                    if not paused:
                        self._pause()
                        paused = True
                    log.warning(
                        "batch not done, dependency unavailable; retrying",
                        extra={
                            "error": type(exc).__name__,
                            "detail": str(exc)[:200],
                            "retry_in_s": round(delay, 2),
                        },
                    )
                    if self._stopping.is_set():
                        log.warning("draining with a dependency down: leaving batch uncommitted for replay")
                        return False
                    if self._consumer is not None and not self._in_rebalance:
                        # Paused, so this returns nothing; it keeps us inside max_poll_interval
                        # so a long outage does not cost our partitions.
                        with contextlib.suppress(KafkaError):
                            await self._consumer.getmany(timeout_ms=0)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), delay)
                    delay = min(delay * 2, self.policy.retry_max_s)
        finally:
            if paused:
                self._resume()

    async def _process_isolating(self, batch: list[InMessage]) -> Outcome:
        try:
            return await self.strategy.process(batch)
        except RetryableError:
            raise
        except Exception as exc:
            if len(batch) == 1:
                log.error(
                    "message failed processing; dead-lettering",
                    extra={"error": type(exc).__name__, "topic": batch[0].topic, "offset": batch[0].offset},
                )
                return Outcome(
                    dlq=[DlqEntry(batch[0], DlqReason.PROCESSING_ERROR, f"unhandled {type(exc).__name__}")]
                )
            log.error("batch failed processing; isolating messages", extra={"error": type(exc).__name__})
        merged = Outcome()
        for msg in batch:
            one = await self._process_isolating([msg])
            merged.records.extend(one.records)
            merged.dlq.extend(one.dlq)
        return merged

    async def _commit(self, batch: list[InMessage]) -> None:
        if self._consumer is None:
            return
        if self._holding is not None:
            for m in batch:
                key = (m.topic, m.partition)
                if m.offset + 1 > self._processed_end.get(key, -1):
                    self._processed_end[key] = m.offset + 1
            await self._commit_watermark(self._holding)
            return
        ends: dict[tuple[str, int], int] = {}
        for m in batch:
            key = (m.topic, m.partition)
            if m.offset >= ends.get(key, -1):
                ends[key] = m.offset + 1
        await self._commit_offsets({TopicPartition(*key): end for key, end in ends.items()})

    async def _commit_watermark(self, holding: HoldingStrategy) -> None:
        """Commit min(processed end, oldest held offset) where that moved forward."""
        held = holding.held_offsets()
        offsets: dict[TopicPartition, int] = {}
        for key, end in self._processed_end.items():
            position = min(end, held.get(key, end))
            if position > self._committed.get(key, -1):
                offsets[TopicPartition(*key)] = position
        if offsets and await self._commit_offsets(offsets):
            for tp, position in offsets.items():
                self._committed[(tp.topic, tp.partition)] = position

    async def _commit_offsets(self, offsets: dict[TopicPartition, int]) -> bool:
        if self._consumer is None:
            return False
        try:
            await self._consumer.commit(offsets)
            metrics.COMMITS.inc()
            return True
        except (CommitFailedError, KafkaError) as exc:
            metrics.COMMIT_FAILURES.inc()
            log.warning("offset commit failed; batch will be replayed", extra={"error": type(exc).__name__})
            return False
