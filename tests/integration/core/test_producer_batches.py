"""Large send_all calls build their own record batches: same partitions, same order, nothing lost.

The scorer's scores, the redactor's redacted traces and the alerter's partials go through
this path; ingest's small calls keep aiokafka's per-record send. A trace's records must
land on the partition the per-record path would have picked, or a trace's spans and
scores could split across partitions (the scorer's windows rely on one partition a trace).
"""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from spanline.core.kafka import OutRecord, Producer
from spanline.core.kafka.producer import BATCH_MIN_RECORDS
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration


async def _topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def test_batched_send_matches_per_record_partitions_and_keeps_order(make_settings: Any) -> None:
    settings = make_settings(kafka={"max_batch_size": 4096})
    bootstrap = settings.kafka.bootstrap
    batched, single = settings.topics.name("batched"), settings.topics.name("single")
    await _topic(bootstrap, batched, 5)
    await _topic(bootstrap, single, 5)
    keys = [f"trace-{i:04d}".encode() for i in range(40)]
    # ten records a key, interleaved, with values big enough that one partition needs
    # several 4 KiB batches; a few keyless records too
    records = [
        OutRecord(batched, f"{k.decode()}#{n}:".encode() + b"x" * 300, key=k, headers=[("h", b"v")])
        for n in range(10)
        for k in keys
    ] + [OutRecord(batched, f"keyless-{n}".encode()) for n in range(5)]
    assert len(records) >= BATCH_MIN_RECORDS

    producer = Producer(settings.kafka)
    await producer.send_all(records)
    await producer.stop()
    # the reference: aiokafka's own per-record send with its default partitioner
    reference = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await reference.start()
    try:
        for k in keys:
            await reference.send_and_wait(single, b"ref", key=k)
    finally:
        await reference.stop()

    got = await read_topic(bootstrap, batched, min_messages=len(records))
    ref = await read_topic(bootstrap, single, min_messages=len(keys))
    assert sorted(m.value for m in got) == sorted(r.value for r in records)  # nothing lost or doubled
    expected_partition = {m.key: m.partition for m in ref}
    for m in got:
        if m.key is not None:
            assert m.partition == expected_partition[m.key], m.key
            assert m.headers == [("h", b"v")]
    for k in keys:  # per key, the order of the call
        seq = [
            int(m.value.split(b"#")[1].split(b":")[0])
            for m in sorted(got, key=lambda m: m.offset)
            if m.key == k
        ]
        assert seq == list(range(10)), k
    assert len({m.partition for m in got if m.key is not None}) > 1
