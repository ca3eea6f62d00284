"""Bounded reads of the alerter's state topics (checkpoints, notification log, silences).

These are one-shot reads to the current end of a compacted topic at start-up or on a
partition assignment, not a consumer loop: scores and partials go through the shared
:class:`~spanline.core.kafka.StreamConsumer`. Tansu reports ``end_offsets`` wrongly, so
the end is the high watermark seen after a fetch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2

from spanline.alerter.silences import Silence, SilenceSet
from spanline.core.kafka import OutRecord, Producer
from spanline.core.kafka.connection import common_kwargs
from spanline.core.settings import KafkaSettings
from spanline.settings import Settings


def partition_of(key: bytes, partitions: int) -> int:
    """The partition aiokafka's default partitioner picks for `key`."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


async def read_to_end(
    kafka: KafkaSettings, topic: str, partitions: Iterable[int] | None = None, timeout_s: float = 30.0
) -> list[tuple[bytes | None, bytes | None]]:
    """(key, value) of every record now on `topic` (or its given partitions), in offset order."""
    consumer = AIOKafkaConsumer(
        **common_kwargs(kafka),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=max(kafka.max_request_size, 1024 * 1024),
        fetch_max_bytes=kafka.fetch_max_bytes,
    )
    await consumer.start()
    out: list[tuple[bytes | None, bytes | None]] = []
    try:
        if partitions is None:
            found = consumer.partitions_for_topic(topic)
            if not found:
                await consumer._client.force_metadata_update()
                found = consumer.partitions_for_topic(topic) or set()
            partitions = sorted(found)
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return out
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        empty_polls = 0
        while time.monotonic() < deadline:
            data = await consumer.getmany(timeout_ms=200)
            for records in data.values():
                out.extend((r.key, r.value) for r in records)
            if data:
                empty_polls = 0
                continue
            empty_polls += 1
            # Done when every partition reached its high watermark. A partition with no
            # watermark yet has not answered a fetch: wait a few empty polls for it.
            pending = False
            for tp in tps:
                high = consumer.highwater(tp)
                if high is None:
                    pending = pending or empty_polls < 3
                elif await consumer.position(tp) < high:
                    pending = True
            if not pending:
                break
        return out
    finally:
        await consumer.stop()


async def write_silence(settings: Settings, silence: Silence) -> None:
    producer = Producer(settings.kafka)
    try:
        await producer.send_all(
            [OutRecord(settings.topics.alerter_silences, silence.to_wire(), silence.id.encode("utf-8"))]
        )
    finally:
        await producer.stop()


async def read_silences(settings: Settings) -> SilenceSet:
    out = SilenceSet()
    for key, value in await read_to_end(settings.kafka, settings.topics.alerter_silences, timeout_s=10):
        out.apply(value, key)
    return out
