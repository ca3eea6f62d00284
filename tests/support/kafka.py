"""Test helpers around the real bundled broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from spanline.core.kafka.records import InMessage


def unique_prefix(name: str = "t") -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


async def read_topic(
    bootstrap: str, topic: str, *, min_messages: int = 1, timeout_s: float = 20.0, settle_s: float = 0.5
) -> list[InMessage]:
    """Everything on `topic` from the start: waits for `min_messages`, then `settle_s` more."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=32 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    out: list[InMessage] = []
    try:
        deadline = time.monotonic() + timeout_s
        settle_until: float | None = None
        while True:
            now = time.monotonic()
            if now > deadline or (settle_until is not None and now > settle_until):
                break
            data = await consumer.getmany(timeout_ms=200)
            for records in data.values():
                for r in records:
                    out.append(
                        InMessage(
                            r.topic, r.partition, r.offset, r.key, r.value or b"", list(r.headers or ())
                        )
                    )
            if len(out) >= min_messages and settle_until is None:
                settle_until = time.monotonic() + settle_s
    finally:
        await consumer.stop()
    return out


def read_topic_sync(bootstrap: str, topic: str, **kwargs: float | int) -> list[InMessage]:
    return asyncio.run(read_topic(bootstrap, topic, **kwargs))  # type: ignore[arg-type]


async def committed_offsets(
    bootstrap: str, group_id: str, partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """The offsets a consumer group has committed, by (topic, partition); absent if none.

    Asked through a consumer of the group that never joins it (OffsetFetch as the group's
    own members use it; the admin client's version of that call does not decode on Tansu).
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    out: dict[tuple[str, int], int] = {}
    try:
        for topic, p in partitions:
            offset = await consumer.committed(TopicPartition(topic, p))
            if offset is not None and offset >= 0:
                out[(topic, p)] = offset
    finally:
        await consumer.stop()
    return out


def committed_offsets_sync(
    bootstrap: str, group_id: str, partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    return asyncio.run(committed_offsets(bootstrap, group_id, partitions))


def end_offsets(messages: list[InMessage]) -> dict[tuple[str, int], int]:
    """Next offset per (topic, partition) of messages read from the start of their topics
    (Tansu's end_offsets are not reliable, see DESIGN.md)."""
    out: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic, m.partition)
        out[key] = max(out.get(key, 0), m.offset + 1)
    return out
