"""A holding strategy's open messages are never committed past (the scorer's open traces):
the consumer commits min(processed end, oldest held offset) per partition on the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from spanline.core.kafka import BatchPolicy, InMessage, Outcome, Producer, StreamConsumer
from tests.integration.core.test_stream_consumer import _produce
from tests.support.kafka import committed_offsets

pytestmark = pytest.mark.integration


class HoldOpen:
    """Holds every message whose value starts with b"open" (an open trace); the rest pass."""

    tick_interval_s = 0.1

    def __init__(self) -> None:
        self.held: dict[tuple[str, int], int] = {}
        self.ends: dict[tuple[str, int], int] = {}

    async def process(self, batch: Sequence[InMessage]) -> Outcome:
        for m in batch:
            key = (m.topic, m.partition)
            self.ends[key] = max(self.ends.get(key, 0), m.offset + 1)
            if m.value.startswith(b"open"):
                self.held[key] = min(self.held.get(key, m.offset), m.offset)
        return Outcome()

    def held_offsets(self) -> dict[tuple[str, int], int]:
        return dict(self.held)

    async def tick(self) -> Outcome:
        return Outcome()

    async def on_revoked(self, partitions: set[tuple[str, int]]) -> None:
        for p in partitions:
            self.held.pop(p, None)

    async def close(self) -> None:
        return None


async def test_commit_stops_at_the_oldest_held_offset(make_settings: Any) -> None:
    settings = make_settings()
    src = settings.topics.name("holding")
    values = [f"done{i:02d}".encode() for i in range(30)] + [b"open-trace"] + [b"late" * 2] * 10
    await _produce(settings, src, values)
    strategy = HoldOpen()
    group = f"{src}-g"
    consumer = StreamConsumer(
        settings=settings.kafka,
        topics=[src],
        group_id=group,
        strategy=strategy,
        producer=Producer(settings.kafka),
        service="test",
        policy=BatchPolicy(max_wait_s=0.05, max_records=8),
    )
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(30):
            while consumer.processed < len(values):
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # a tick or two: the watermark is committed
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 30)
        await consumer.producer.stop()

    assert len(strategy.held) == 1
    committed = await committed_offsets(settings.kafka.bootstrap, group, strategy.ends)
    expected = {key: strategy.held.get(key, end) for key, end in strategy.ends.items()}
    # the open message's partition stops at it (it and what follows are replayed); the others
    # were committed to their end, so commits did happen
    assert committed == expected
    ((open_key, open_offset),) = strategy.held.items()
    assert open_offset < strategy.ends[open_key]
