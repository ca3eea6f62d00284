"""A service whose input is Kafka: the shared component around :class:`StreamConsumer`.

Redactor, writer and every later consumer are this class plus their own strategy, so
lifecycle, readiness and drain behave the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from spanline.core.kafka import BatchPolicy, ProcessingStrategy, Producer, StreamConsumer
from spanline.core.settings import KafkaSettings


class ConsumerService:
    def __init__(
        self,
        *,
        name: str,
        kafka: KafkaSettings,
        topics: Sequence[str],
        group_id: str,
        strategy: ProcessingStrategy,
        policy: BatchPolicy | None = None,
        producer: Producer | None = None,
    ) -> None:
        self.name = name
        self.producer = producer or Producer(kafka)
        self.consumer = StreamConsumer(
            settings=kafka,
            topics=topics,
            group_id=group_id,
            strategy=strategy,
            producer=self.producer,
            service=name,
            policy=policy,
        )

    async def start(self) -> None:
        """Nothing to bind: the consumer connects (and reconnects) inside run()."""

    async def run(self) -> None:
        try:
            await self.consumer.run()
        finally:
            await self.producer.stop()

    async def stop(self) -> None:
        self.consumer.stop()

    def ready(self) -> bool:
        return self.consumer.ready
