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
from typing import Protocol

from spanline.core.kafka.records import InMessage, OutRecord


class RetryableError(Exception):
    """A downstream dependency is unavailable; the batch should be retried later."""


@dataclass(slots=True)
class DlqEntry:
    """A message that cannot be processed, and why.

    `reason` is a short machine-friendly code (`decode_error`, `redaction_failed`, ...);
    `detail` is a human sentence that must never contain payload values.
    """

    message: InMessage
    reason: str
    detail: str = ""


@dataclass(slots=True)
class Outcome:
    records: list[OutRecord] = field(default_factory=list)
    dlq: list[DlqEntry] = field(default_factory=list)


class ProcessingStrategy(Protocol):
    """What a service does with consumed messages. Must be idempotent under replay."""

    async def process(self, batch: Sequence[InMessage]) -> Outcome: ...

    async def close(self) -> None: ...
