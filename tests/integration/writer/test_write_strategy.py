"""The writer's processing step on a real engine: headers and times that cannot be stored."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from spanline.core.kafka import InMessage
from spanline.core.kafka.records import H_PROJECT, H_RECEIVED_AT, H_SIGNAL
from spanline.settings import load_settings
from spanline.spans.object_store import LocalObjectStore, PayloadOffloader
from spanline.writer.service import WriteStrategy
from spanline.writer.store import ClickHouseStore
from tests.integration.writer.conftest import scalar

T0 = time.time_ns() // 1_000_000 * 1_000_000  # recent: older rows fall out of the hot window's TTL


def _traces(span_byte: int, start: int) -> bytes:
    td = TracesData()
    span = (
        td.resource_spans.add()
        .scope_spans.add()
        .spans.add(trace_id=b"\x07" * 16, span_id=bytes([span_byte]) * 8, name="s")
    )
    span.start_time_unix_nano, span.end_time_unix_nano = start, start + 10
    return td.SerializeToString()


def test_garbage_times_dead_letter_one_message_and_garbage_headers_fall_back(
    store: ClickHouseStore, database: str, tmp_path: Path
) -> None:
    settings = load_settings(None, data_dir=str(tmp_path / "data"))
    strategy = WriteStrategy(
        settings, store, PayloadOffloader(LocalObjectStore(tmp_path / "objects"), 1 << 20)
    )
    topic = settings.topics.redacted

    def msg(offset: int, value: bytes, received: bytes) -> InMessage:
        headers = [(H_PROJECT, b"p"), (H_SIGNAL, b"traces"), (H_RECEIVED_AT, received)]
        return InMessage(topic, 0, offset, None, value, headers, timestamp_ms=T0 // 1_000_000)

    outcome = asyncio.run(
        strategy.process(
            [
                msg(0, _traces(1, T0), str(1 << 64).encode()),  # received-at past 2262: the broker's time
                msg(1, _traces(2, 1 << 63), str(T0).encode()),  # a span past 2262: this message only
                msg(2, _traces(3, T0), b"not a number"),
            ]
        )
    )
    assert [(e.message.offset, e.reason) for e in outcome.dlq] == [(1, "parse_error")]
    assert "DateTime64(9) range" in outcome.dlq[0].detail
    assert scalar(store.client, f"SELECT count() FROM {database}.spans") == 2
    ingested = scalar(
        store.client, f"SELECT groupUniqArray(toUnixTimestamp64Nano(ingested_at)) FROM {database}.spans"
    )
    assert ingested == [T0]


def test_the_writer_trims_the_heap_when_no_batch_is_left() -> None:
    """The shared consumer gives the free heap back once no batch is in flight or buffered
    (tests/integration/core: only then); the writer, whose batches are tens of MB, asks it to."""
    from spanline.writer.service import batch_policy

    assert batch_policy(load_settings(None).writer).release_heap_when_idle
