"""The shared consumer loop on the real broker: commit policy, back-pressure, poison messages."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import TopicPartition

from spanline.core.kafka import (
    BatchPolicy,
    InMessage,
    Outcome,
    OutRecord,
    Producer,
    RetryableError,
    StreamConsumer,
)
from spanline.core.kafka import metrics as kmetrics
from spanline.core.kafka.dlq import H_ERROR_REASON
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration


class Flaky:
    """Unavailable for the first `failures` calls, then copies input to `out`; raises on b'poison'."""

    def __init__(self, out: str, failures: int = 0) -> None:
        self.out = out
        self.failures = failures
        self.calls = 0
        self.seen: list[bytes] = []

    async def process(self, batch: Sequence[InMessage]) -> Outcome:
        self.calls += 1
        if self.calls <= self.failures:
            raise RetryableError("sink down")
        if any(m.value == b"poison" for m in batch):
            raise ValueError("cannot handle poison")
        self.seen.extend(m.value for m in batch)
        return Outcome(records=[OutRecord(self.out, m.value, m.key) for m in batch])

    async def close(self) -> None:
        return None


async def _produce(settings: Any, topic: str, values: list[bytes]) -> None:
    p = Producer(settings.kafka)
    await p.send_all([OutRecord(topic, v, v[:4]) for v in values])
    await p.stop()


def _consumer(settings: Any, src: str, strategy: Flaky, **policy: Any) -> StreamConsumer:
    return StreamConsumer(
        settings=settings.kafka,
        topics=[src],
        group_id=f"{src}-g",
        strategy=strategy,
        producer=Producer(settings.kafka),
        service="test",
        policy=BatchPolicy(**{"max_wait_s": 0.05, **policy}),
    )


async def _run_until(consumer: StreamConsumer, done: Any, timeout: float = 30) -> None:
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(timeout):
            while not done():
                await asyncio.sleep(0.1)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 30)
        await consumer.producer.stop()


async def test_retry_pauses_then_commits_and_poison_goes_to_dlq(make_settings: Any) -> None:
    settings = make_settings()
    src, out = settings.topics.name("src"), settings.topics.name("out")
    values = [f"v{i:03d}".encode() for i in range(50)] + [b"poison"]
    await _produce(settings, src, values)
    strategy = Flaky(out, failures=3)
    retries_before = kmetrics.RETRIES._value.get()
    consumer = _consumer(settings, src, strategy, max_records=20, retry_initial_s=0.05)
    await _run_until(consumer, lambda: consumer.processed >= len(values))
    assert kmetrics.RETRIES._value.get() - retries_before >= 3
    assert sorted(strategy.seen) == sorted(values[:-1])
    dlq = await read_topic(settings.kafka.bootstrap, src + ".dlq", min_messages=1)
    assert [m.value for m in dlq] == [b"poison"]
    assert dlq[0].header(H_ERROR_REASON) == b"processing_error"

    # Offsets were committed: the same group sees nothing new.
    again = Flaky(out)
    consumer2 = _consumer(settings, src, again)
    await _run_until(consumer2, lambda: consumer2.ready, timeout=30)
    await asyncio.sleep(1.0)
    assert again.seen == []


async def test_stop_while_dependency_down_leaves_batch_uncommitted(make_settings: Any) -> None:
    settings = make_settings()
    src, out = settings.topics.name("src"), settings.topics.name("out")
    await _produce(settings, src, [b"a0001", b"a0002"])
    down = Flaky(out, failures=10_000)
    consumer = _consumer(settings, src, down, retry_initial_s=0.05)
    await _run_until(consumer, lambda: down.calls >= 3)
    assert consumer.processed == 0
    # A healthy consumer of the same group replays both: nothing was committed.
    up = Flaky(out)
    consumer2 = _consumer(settings, src, up)
    await _run_until(consumer2, lambda: len(up.seen) >= 2)
    assert sorted(up.seen) == [b"a0001", b"a0002"]


async def test_revoked_partitions_stop_reporting_lag(make_settings: Any) -> None:
    """A partition that moved away must not keep its last lag on this replica's /metrics:
    summed over replicas (KEDA, the lag alerts) a frozen value is a phantom backlog."""
    settings = make_settings()
    src, out = settings.topics.name("src"), settings.topics.name("out")
    await _produce(settings, src, [f"v{i:03d}".encode() for i in range(40)])
    consumer = _consumer(settings, src, Flaky(out))
    await _run_until(consumer, lambda: consumer.processed >= 40)

    def lag_partitions() -> set[str]:
        return {
            s.labels["partition"]
            for m in kmetrics.LAG.collect()
            for s in m.samples
            if s.labels["topic"] == src
        }

    reported = lag_partitions()
    assert reported, "the consumer reported no lag at all"
    gone = sorted(reported)[0]
    await consumer._flush_for_rebalance({TopicPartition(src, int(gone))})  # the rebalance hook
    assert lag_partitions() == reported - {gone}


async def test_an_idle_stream_hands_over_a_big_batch_before_its_timer(make_settings: Any) -> None:
    """The end of a burst: a batch of idle_min_records or more goes once nothing came for
    idle_s; a smaller one still waits for max_wait_s (no tiny commits from a trickle)."""
    settings = make_settings()
    src, out = settings.topics.name("src"), settings.topics.name("out")
    strategy = Flaky(out)
    consumer = _consumer(
        settings, src, strategy, max_records=1_000, max_wait_s=30.0, idle_s=0.3, idle_min_records=20
    )
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(30):
            while not consumer.ready:
                await asyncio.sleep(0.05)
        await _produce(settings, src, [f"b{i:03d}".encode() for i in range(30)])
        async with asyncio.timeout(10):  # far below max_wait_s
            while len(strategy.seen) < 30:
                await asyncio.sleep(0.05)
        assert strategy.calls == 1
        await _produce(settings, src, [f"s{i:03d}".encode() for i in range(5)])
        await asyncio.sleep(2.0)
        assert len(strategy.seen) == 30  # five are below idle_min_records: they wait
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 30)
        await consumer.producer.stop()


async def test_an_idle_batch_of_few_big_records_goes_by_its_bytes(make_settings: Any) -> None:
    """idle_min_bytes: a few records holding enough bytes go once idle, like many small
    ones; a few small ones still wait."""
    settings = make_settings()
    src, out = settings.topics.name("src"), settings.topics.name("out")
    strategy = Flaky(out)
    consumer = _consumer(
        settings,
        src,
        strategy,
        max_records=1_000,
        max_wait_s=30.0,
        idle_s=0.3,
        idle_min_records=1_000,
        idle_min_bytes=20_000,
    )
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(30):
            while not consumer.ready:
                await asyncio.sleep(0.05)
        await _produce(settings, src, [b"big%03d" % i + b"x" * 9_000 for i in range(3)])
        async with asyncio.timeout(10):  # far below max_wait_s
            while len(strategy.seen) < 3:
                await asyncio.sleep(0.05)
        await _produce(settings, src, [b"small%d" % i for i in range(5)])
        await asyncio.sleep(2.0)
        assert len(strategy.seen) == 3  # 5 small records are below both minimums
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 30)
        await consumer.producer.stop()


async def _batch_sizes(make_settings: Any, max_poll_records: int) -> list[int]:
    """Sizes of the batches 200 records of 4 bytes make under a 40-byte bound."""
    settings = make_settings(kafka={"max_poll_records": max_poll_records})
    src, out = settings.topics.name("src"), settings.topics.name("out")
    await _produce(settings, src, [f"r{i:03d}".encode() for i in range(200)])  # 4 bytes each
    sizes: list[int] = []

    class Sizes(Flaky):
        async def process(self, batch: Sequence[InMessage]) -> Outcome:
            sizes.append(len(batch))
            return await super().process(batch)

    strategy = Sizes(out)
    consumer = _consumer(settings, src, strategy, max_records=1_000, max_bytes=40, max_wait_s=5.0)
    await _run_until(consumer, lambda: len(strategy.seen) >= 200)
    assert sum(sizes) == 200
    return sizes


async def test_the_byte_bound_holds_on_a_backlog(make_settings: Any) -> None:
    """Polls are capped at kafka.max_poll_records, so a backlog cannot put a whole
    max_records batch into memory before the byte bound is compared."""
    sizes = await _batch_sizes(make_settings, max_poll_records=10)
    assert max(sizes) <= 20, sizes  # 10 records reach the bound; a poll adds at most 10


async def test_a_poll_takes_only_the_records_the_byte_bound_has_room_for(make_settings: Any) -> None:
    """With a poll cap far above the byte bound, polls are sized by the records' bytes: a
    batch overshoots the bound by a tenth and one record of the last poll's size at most."""
    sizes = await _batch_sizes(make_settings, max_poll_records=1_000)
    assert max(sizes) <= 12, sizes


class _Slow(Flaky):
    """Takes a while per batch, so with two in flight the first finishes while the second runs."""

    async def process(self, batch: Sequence[InMessage]) -> Outcome:
        await asyncio.sleep(0.3)
        return await super().process(batch)


async def test_the_heap_is_trimmed_only_when_no_batch_is_left(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """release_heap_when_idle: after a committed batch with another still in flight, nothing;
    after the last one, the free heap goes back (under a backlog the next batch would fault
    the same pages in again)."""
    from spanline.core.kafka import consumer as consumer_module

    settings = make_settings()
    src, out = settings.topics.name("src"), settings.topics.name("out")
    strategy = _Slow(out)
    consumer = _consumer(settings, src, strategy, max_records=10, max_inflight=2, release_heap_when_idle=True)
    released: list[int] = []  # batches processed when the heap was trimmed
    monkeypatch.setattr(consumer_module, "release_free_heap", lambda: released.append(strategy.calls) or True)
    await _produce(settings, src, [f"m{i:03d}".encode() for i in range(20)])
    await _run_until(consumer, lambda: consumer.processed >= 20)
    assert strategy.calls >= 2 and len(strategy.seen) == 20
    # one trim, once both batches were done: never between two batches in flight
    assert released and released[0] == strategy.calls and len(released) <= strategy.calls - 1
