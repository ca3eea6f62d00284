"""The one Kafka layer every spanline service uses.

Split the way sentry-arroyo splits it: *what* to do with a batch lives in a
:class:`~spanline.core.kafka.strategy.ProcessingStrategy`; *when* offsets are committed
(only after the strategy's output is durably produced or written) lives in
:class:`~spanline.core.kafka.consumer.StreamConsumer`. Services never write a poll loop.
"""

from spanline.core.kafka.consumer import BatchPolicy, StreamConsumer
from spanline.core.kafka.producer import ProduceError, Producer
from spanline.core.kafka.records import Headers, InMessage, OutRecord
from spanline.core.kafka.strategy import (
    DlqEntry,
    DlqReason,
    HoldingStrategy,
    Outcome,
    Partition,
    ProcessingStrategy,
    RetryableError,
)

__all__ = [
    "BatchPolicy",
    "DlqEntry",
    "DlqReason",
    "Headers",
    "HoldingStrategy",
    "InMessage",
    "OutRecord",
    "Outcome",
    "Partition",
    "ProcessingStrategy",
    "ProduceError",
    "Producer",
    "RetryableError",
    "StreamConsumer",
]
