"""Consumer-group lag seen from outside the group: committed offsets vs high-water marks.

`spanline up` uses it to drain: a stage may stop once its group has committed everything
its input topics hold. The admin API's OffsetFetch does not decode on the bundled broker,
and its ListOffsets answer is not to be trusted there, so committed offsets come from a
consumer that carries the group id but never joins the group (``committed()`` only
asks the coordinator), and high-water marks from a group-less consumer's fetch
(``highwater()`` after a fetch is what the broker reports correctly).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from spanline.core.kafka.connection import common_kwargs
from spanline.core.settings import KafkaSettings


@dataclass(frozen=True, slots=True)
class GroupLag:
    group: str
    by_topic: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_topic.values())


class LagProbe:
    """Measures the lag of several groups on their topics; keep one open while draining."""

    def __init__(self, kafka: KafkaSettings, groups: Mapping[str, Sequence[str]]) -> None:
        self._kafka = kafka
        self._groups = {group: list(topics) for group, topics in groups.items()}
        self._committed: dict[str, AIOKafkaConsumer] = {}
        self._partitions: dict[str, list[TopicPartition]] = {}

    async def start(self) -> None:
        base = common_kwargs(self._kafka)
        for group in self._groups:
            consumer = AIOKafkaConsumer(**base, group_id=group, enable_auto_commit=False)
            await consumer.start()
            self._committed[group] = consumer
        any_consumer = next(iter(self._committed.values()), None)
        if any_consumer is None:
            return
        for topic in sorted({t for ts in self._groups.values() for t in ts}):
            parts = any_consumer.partitions_for_topic(topic)
            if not parts:
                await any_consumer._client.force_metadata_update()
                parts = any_consumer.partitions_for_topic(topic) or set()
            self._partitions[topic] = [TopicPartition(topic, p) for p in sorted(parts)]

    async def close(self) -> None:
        for consumer in self._committed.values():
            with contextlib.suppress(Exception):
                await consumer.stop()
        self._committed.clear()

    async def high_water(self, start_at: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """High-water mark of each partition, from the first fetch of a fresh consumer.

        A fresh consumer, because a long-lived one may answer from records it prefetched
        before the last measurement; fetching from `start_at` (where the group stands)
        costs at most one small batch per partition.
        """
        if not start_at:
            return {}
        fetcher = AIOKafkaConsumer(
            **common_kwargs(self._kafka),
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=64 * 1024,
        )
        await fetcher.start()
        try:
            tps = list(start_at)
            fetcher.assign(tps)
            for tp, offset in start_at.items():
                fetcher.seek(tp, offset)
            marks: dict[TopicPartition, int] = {}
            for _ in range(25):
                await fetcher.getmany(timeout_ms=200, max_records=1)
                for tp in tps:
                    high = fetcher.highwater(tp)
                    if high is not None:
                        marks[tp] = high
                if len(marks) == len(tps):
                    return marks
            raise TimeoutError("the broker reported no high-water mark for some partitions")
        finally:
            with contextlib.suppress(Exception):
                await fetcher.stop()

    async def lag(self) -> list[GroupLag]:
        """Records each group has not committed yet, per topic."""
        committed: dict[tuple[str, TopicPartition], int] = {}
        start_at: dict[TopicPartition, int] = {}
        for group, topics in self._groups.items():
            consumer = self._committed[group]
            for topic in topics:
                for tp in self._partitions.get(topic, []):
                    offset = await consumer.committed(tp) or 0
                    committed[(group, tp)] = offset
                    start_at[tp] = min(start_at.get(tp, offset), offset)
        marks = await self.high_water(start_at)
        out = []
        for group, topics in self._groups.items():
            by_topic = {
                topic: sum(
                    max(0, marks.get(tp, 0) - committed[(group, tp)])
                    for tp in self._partitions.get(topic, [])
                )
                for topic in topics
            }
            out.append(GroupLag(group, by_topic))
        return out
