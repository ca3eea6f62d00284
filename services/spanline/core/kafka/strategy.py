"""The contract between the consumer loop and a service's processing.

A strategy gets a batch and returns what to produce and what to dead-letter. If it
raises :class:`RetryableError` the consumer pauses, backs off and offers the *same*
batch again (a sink that is down makes lag grow, not memory). Any other exception is a
bug: the consumer dead-letters nothing and stops without committing, so no data is
skipped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from spanline.core.kafka.records import InMessage, OutRecord


class RetryableError(Exception):
    """A downstream dependency is unavailable; the batch should be retried later."""


class DlqReason(StrEnum):
    """Why a message was dead-lettered: the ``spanline-error-reason`` header and the
    ``reason`` label of ``spanline_dlq_records_total`` (every member's series is created at 0
    when a consumer starts, so this is the one list of them)."""

    DECODE_ERROR = "decode_error"  # not the protobuf / envelope the topic carries
    PARSE_ERROR = "parse_error"  # decodes, but the row builders or span model refuse it
    INVALID_SCORE = "invalid_score"  # a score without a name or with a non-finite value
    REDACTION_FAILED = "redaction_failed"  # the redactor could not redact it (fail closed)
    PROCESSING_ERROR = "processing_error"  # the service raised on this message alone


@dataclass(slots=True)
class DlqEntry:
    """A message that cannot be processed, and why.

    `detail` is a human sentence that must never contain payload values.
    """

    message: InMessage
    reason: DlqReason
    detail: str = ""


@dataclass(slots=True)
class Outcome:
    records: list[OutRecord] = field(default_factory=list)
    dlq: list[DlqEntry] = field(default_factory=list)


class ProcessingStrategy(Protocol):
    """What a service does with consumed messages. Must be idempotent under replay."""

    async def process(self, batch: Sequence[InMessage]) -> Outcome: ...

    async def close(self) -> None: ...


Partition = tuple[str, int]
"""(topic, partition); equal to and hashed like aiokafka's ``TopicPartition``."""


class HoldingStrategy(ProcessingStrategy, Protocol):
    """A strategy that keeps messages across batches (the scorer's trace windows).

    The consumer then commits, per partition, ``min(end of what was processed, oldest
    held offset)`` (a watermark commit), so whatever the strategy still holds is replayed
    after a crash or by the next owner after a rebalance. Time passes for held messages
    even when nothing arrives: the consumer calls :meth:`tick` every ``tick_interval_s``
    (after finishing any batch) and produces its outcome before committing again.
    Strategies without these methods keep plain commit-after-batch.
    """

    tick_interval_s: float

    def held_offsets(self) -> dict[Partition, int]:
        """Per partition, the lowest offset still needed; partitions holding nothing are absent."""
        ...

    async def tick(self) -> Outcome:
        """Close what is due without new input; its records are produced before the next commit."""
        ...

    async def on_revoked(self, partitions: set[Partition]) -> None:
        """Drop what is held for these partitions (never commit past it): the new owner replays it."""
        ...
