"""The writer never commits past a failed insert, and loses nothing once the store heals.

The store is made to refuse inserts for real (tests.support.sink_faults: a constraint no
row satisfies, no root needed); the writer runs unchanged in a thread of this process,
which is what lets the test alter the engine the writer owns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from spanline.core.broker import free_port
from spanline.core.kafka import OutRecord, Producer
from spanline.core.kafka import metrics as kmetrics
from spanline.core.kafka.records import H_PROJECT, H_RECEIVED_AT, H_SIGNAL
from spanline.settings import Settings
from spanline.writer.config import resolve_dsn
from spanline.writer.service import WriterService
from spanline.writer.store import connect
from tests.integration.writer.otlp import traces
from tests.support.kafka import committed_offsets_sync, end_offsets, read_topic_sync, unique_prefix
from tests.support.services import ServiceThread
from tests.support.sink_faults import ChdbInsertFailure

pytestmark = pytest.mark.integration


@pytest.fixture
def writer(make_settings: Any) -> Iterator[tuple[Settings, Any]]:
    settings = make_settings(
        writer={
            "query_port": free_port(),
            "batch_max_wait_s": 0.1,
            "insert_retries": 1,
            "insert_backoff_initial_s": 0.05,
            "insert_backoff_max_s": 0.2,
        },
        kafka={"group_prefix": unique_prefix("g")},
    )
    with ServiceThread(WriterService(settings)):
        client = connect(resolve_dsn(settings))  # same process: a second client on its engine
        try:
            yield settings, client
        finally:
            client.close()


def _produce(settings: Settings, first: int, n: int) -> None:
    headers = [(H_SIGNAL, b"traces"), (H_PROJECT, b"p"), (H_RECEIVED_AT, str(time.time_ns()).encode())]
    records = []
    for i in range(first, first + n):
        trace_id = i.to_bytes(16, "big")
        spans = [{"span_id": j + 1, "name": f"op{j}"} for j in range(5)]
        value = traces(trace_id, spans).SerializeToString()
        records.append(OutRecord(settings.topics.redacted, value, trace_id, headers))

    async def send() -> None:
        p = Producer(settings.kafka)
        await p.send_all(records)
        await p.stop()

    asyncio.run(send())


def _wait(what: str, check: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_failed_insert_holds_offsets_then_everything_lands(
    writer: tuple[Settings, Any],
) -> None:
    settings, client = writer
    db = settings.writer.database
    group = settings.topics.group(settings.kafka, "writer")
    partitions = [(settings.topics.redacted, p) for p in range(16)]

    def raw_rows() -> int:
        return int(client.query(f"SELECT count() FROM `{db}`.spans").result_rows[0][0])

    def committed() -> dict[tuple[str, int], int]:
        return committed_offsets_sync(settings.kafka.bootstrap, group, partitions)

    def ends(min_messages: int) -> dict[tuple[str, int], int]:
        return end_offsets(
            read_topic_sync(settings.kafka.bootstrap, settings.topics.redacted, min_messages=min_messages)
        )

    _produce(settings, 1, 20)
    _wait("first 100 spans", lambda: raw_rows() == 100)
    before = ends(20)
    _wait("first batch committed", lambda: committed() == before)

    fault = ChdbInsertFailure(client, db, ["spans"])
    with fault.failing():
        retries = kmetrics.RETRIES._value.get()
        _produce(settings, 100, 30)
        # The writer met the refusal more than once (retry loop, paused), and committed nothing.
        _wait("the writer retried the refused batch", lambda: kmetrics.RETRIES._value.get() >= retries + 2)
        assert kmetrics.PAUSED._value.get() == 1
        assert raw_rows() == 100
        assert committed() == before, "offsets moved past a batch that was never written"
    # Healed: the same batch goes in, every span once, and offsets reach the end.
    _wait("all 250 spans", lambda: raw_rows() >= 250)
    after = ends(50)
    _wait("everything committed", lambda: committed() == after)
    assert raw_rows() == 250
    assert client.query(f"SELECT uniqExact(trace_id, span_id) FROM `{db}`.spans").result_rows[0][0] == 250
    _wait("consumption resumed", lambda: kmetrics.PAUSED._value.get() == 0)
