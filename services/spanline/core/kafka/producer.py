"""A producer that answers one question reliably: did Kafka acknowledge all of these?

Ingest must never acknowledge an OTLP export Kafka did not store, and consumers must
commit only after their output is acknowledged; both call :meth:`Producer.send_all`.
The underlying aiokafka producer is (re)started lazily so a service survives a broker
that is down at start-up or restarts underneath it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from spanline.core.kafka import metrics
from spanline.core.kafka.connection import common_kwargs
from spanline.core.kafka.records import OutRecord
from spanline.core.settings import KafkaSettings

log = logging.getLogger(__name__)

_RECONNECT_BACKOFF_S = 1.0
# Below this many records a call goes through aiokafka's per-record send(), whose open
# batches let concurrent callers (ingest requests) share one produce request. From here on
# the call builds its own record batches per partition: aiokafka's per-record path costs
# about 16 µs of CPU a record, which made producing the scorer's scores a third of its CPU.
BATCH_MIN_RECORDS = 32


class ProduceError(Exception):
    """Kafka did not acknowledge every record. `reason` is a short code for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Producer:
    def __init__(self, settings: KafkaSettings, *, acks: str | int = "all") -> None:
        self._settings = settings
        self._acks = acks
        self._producer: AIOKafkaProducer | None = None
        self._start_lock = asyncio.Lock()
        self._closed = False
        self._connect_failed_at = -1e9

    @property
    def max_record_bytes(self) -> int:
        """Largest key+value we send; leave room for headers and batch framing."""
        return self._settings.max_request_size - 64 * 1024

    async def start(self, timeout_s: float | None = None) -> None:
        """Connect now; raise ProduceError if the broker cannot be reached in time."""
        await self._ensure(timeout_s or self._settings.request_timeout_ms / 1000)

    async def _ensure(self, timeout_s: float) -> AIOKafkaProducer:
        if self._closed:
            raise ProduceError("closed", "producer is shut down")
        if self._producer is not None:
            return self._producer
        self._fail_fast()
        async with self._start_lock:
            if self._producer is not None:
                return self._producer
            # Callers queued behind a failed attempt must not each wait a full timeout.
            self._fail_fast()
            s = self._settings
            producer = AIOKafkaProducer(
                **common_kwargs(s),
                acks=self._acks,
                compression_type=None if s.compression == "none" else s.compression,
                max_batch_size=s.max_batch_size,
                linger_ms=s.linger_ms,
                max_request_size=s.max_request_size,
                enable_idempotence=False,
            )
            try:
                await asyncio.wait_for(producer.start(), timeout_s)
            except (TimeoutError, KafkaError, OSError) as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                metrics.PRODUCE_ERRORS.labels("connect").inc()
                self._connect_failed_at = time.monotonic()
                raise ProduceError(
                    "unavailable", f"Kafka unreachable at {s.bootstrap}: {type(exc).__name__}"
                ) from None
            self._producer = producer
            log.info("kafka producer connected", extra={"bootstrap": s.bootstrap})
            return producer

    def _fail_fast(self) -> None:
        if time.monotonic() - self._connect_failed_at < _RECONNECT_BACKOFF_S:
            metrics.PRODUCE_ERRORS.labels("connect").inc()
            raise ProduceError("unavailable", f"Kafka unreachable at {self._settings.bootstrap} (retrying)")

    async def send_all(self, records: Sequence[OutRecord], timeout_s: float | None = None) -> None:
        """Send `records` and wait until Kafka acknowledged every one of them.

        On any failure or timeout raise :class:`ProduceError`; some records may have been
        stored anyway (at-least-once: the sinks are idempotent), none is reported as stored
        when it was not.
        """
        if not records:
            return
        timeout = timeout_s if timeout_s is not None else self._settings.request_timeout_ms / 1000
        started = time.monotonic()
        # One pass: refuse what can never be stored, and tally what to count once acked.
        per_topic: dict[str, list[int]] = {}
        for record in records:
            size = record.size
            if size > self.max_record_bytes:
                metrics.PRODUCE_ERRORS.labels("too_large").inc()
                raise ProduceError(
                    "too_large",
                    f"record of {size} bytes exceeds the {self.max_record_bytes}-byte limit"
                    f" for {record.topic}",
                )
            tally = per_topic.setdefault(record.topic, [0, 0])
            tally[0] += 1
            tally[1] += size
        producer = await self._ensure(timeout)

        async def _send() -> None:
            if len(records) < BATCH_MIN_RECORDS:
                futures = [
                    await producer.send(r.topic, value=r.value, key=r.key, headers=r.headers or None)
                    for r in records
                ]
            else:
                futures = await _send_batches(producer, records)
            await asyncio.gather(*futures)

        try:
            remaining = max(0.001, timeout - (time.monotonic() - started))
            await asyncio.wait_for(_send(), remaining)
        except TimeoutError:
            metrics.PRODUCE_ERRORS.labels("timeout").inc()
            await self._discard(producer)
            raise ProduceError("timeout", f"Kafka did not acknowledge within {timeout:.1f}s") from None
        except KafkaError as exc:
            metrics.PRODUCE_ERRORS.labels("kafka").inc()
            await self._discard(producer)
            raise ProduceError("unavailable", f"Kafka rejected the records: {type(exc).__name__}") from None
        metrics.PRODUCE_SECONDS.observe(time.monotonic() - started)
        for topic, (n, b) in per_topic.items():
            metrics.PRODUCED_RECORDS.labels(topic).inc(n)
            metrics.PRODUCED_BYTES.labels(topic).inc(b)

    async def _discard(self, producer: AIOKafkaProducer) -> None:
        """Throw away a producer whose records were reported as failed.

        Its accumulator still holds records the caller will send again (the OTLP client
        retries, a consumer re-processes the batch); keeping them would grow memory for
        the whole outage and replay stale batches into a restarted broker before any
        metadata refresh. The next send builds a fresh producer.
        """
        if self._producer is producer:
            self._producer = None
        task = asyncio.ensure_future(producer.stop())
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(task), 1.0)
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            with contextlib.suppress(Exception):
                await producer.client.close()

    async def stop(self) -> None:
        """Flush what is buffered and disconnect."""
        self._closed = True
        if self._producer is not None:
            producer, self._producer = self._producer, None
            with contextlib.suppress(Exception):
                await producer.stop()


async def _send_batches(producer: AIOKafkaProducer, records: Sequence[OutRecord]) -> list[Any]:
    """Append `records` to one record batch per partition and hand the batches over whole.

    Partitions are chosen as aiokafka's own default partitioner would (Kafka's murmur2 of
    the key), so a trace's records land on the same partition whichever path sent them;
    the hash is taken once per distinct key (a trace's scores share one). Order per
    partition is the order of `records`.
    """
    partitioner = DefaultPartitioner()
    partitions_of: dict[str, list[int]] = {}
    by_partition: dict[tuple[str, int], list[OutRecord]] = {}
    chosen: dict[tuple[str, bytes], int] = {}
    for r in records:
        parts = partitions_of.get(r.topic)
        if parts is None:
            parts = partitions_of[r.topic] = sorted(await producer.partitions_for(r.topic))
        if r.key is None:
            partition = partitioner(None, parts, parts)
        else:
            partition = chosen.get((r.topic, r.key), -1)
            if partition < 0:
                partition = chosen[(r.topic, r.key)] = partitioner(r.key, parts, parts)
        group = by_partition.get((r.topic, partition))
        if group is None:
            by_partition[(r.topic, partition)] = [r]
        else:
            group.append(r)
    futures: list[Any] = []
    for (topic, partition), group in by_partition.items():
        batch = producer.create_batch()
        for r in group:
            if batch.append(timestamp=None, key=r.key, value=r.value, headers=r.headers) is None:
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                if batch.append(timestamp=None, key=r.key, value=r.value, headers=r.headers) is None:
                    raise ProduceError("too_large", f"a record does not fit in an empty batch for {topic}")
        if batch.record_count():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures
