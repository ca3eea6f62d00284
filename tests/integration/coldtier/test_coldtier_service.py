"""The coldtier against the real broker: exactly once in Iceberg, across a SIGKILL and a
crash between the Iceberg and the Kafka commit; garbage to the DLQ; S3 on moto."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from spanline.coldtier.governance import GovernanceStore
from spanline.coldtier.service import ColdStrategy, ColdtierService
from spanline.coldtier.tables import ensure_tables
from spanline.core.broker import free_port
from spanline.settings import Settings
from tests.conftest import settings_env
from tests.integration.coldtier.conftest import (
    MotoServer,
    cold_span_keys,
    produce,
    s3_coldtier,
    span_record,
    wait_until,
)
from tests.support.kafka import read_topic_sync
from tests.support.services import ServiceProcess, ServiceThread


def _store_traces(s: Settings, *, traces: int, spans: int, timeout_s: float, what: str) -> None:
    """Produce ``traces`` new traces of ``spans`` spans and run a coldtier until all are in
    Iceberg."""
    produce(s, [span_record(s, os.urandom(16), spans) for _ in range(traces)])
    with ServiceThread(ColdtierService(s)):
        wait_until(lambda: len(cold_span_keys(s)) >= traces * spans, timeout_s, what)


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **settings_env(settings),
        "SPANLINE_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "SPANLINE_COLDTIER_BATCH_MAX_MESSAGES": "3",
        # two in flight: the harder case for exactly once (Kafka's committed offset then trails
        # the snapshot by up to two batches); one is the default
        "SPANLINE_COLDTIER_BATCHES_IN_FLIGHT": "2",
        "SPANLINE_COLDTIER_BATCH_MAX_WAIT_S": "0.1",
        "SPANLINE_COLDTIER_MAINTENANCE_INTERVAL_S": "0",
        **extra,
    }


def test_every_span_once_after_sigkill_and_resume_from_snapshot(
    cold_settings: Settings, tmp_path: Path
) -> None:
    s = cold_settings
    ids = [os.urandom(16) for _ in range(60)]
    records = [span_record(s, t, 3) for t in ids]
    garbage = (s.topics.redacted, b"k" * 16, b"\xff\x00 not protobuf", [("spanline-signal", b"traces")])
    produce(s, [*records[:30], garbage, *records[30:]])

    # A crash between the Iceberg commit and the Kafka commit: rows and offsets in the
    # snapshot, nothing committed to Kafka. The service must resume from the snapshot.
    first = read_topic_sync(s.kafka.bootstrap, s.topics.redacted, min_messages=61)
    first.sort(key=lambda m: (m.partition, m.offset))
    head = [m for m in first if m.offset < 4]
    _, tables = ensure_tables(s)
    strategy = ColdStrategy(s, tables, GovernanceStore.from_settings(s))
    asyncio.run(strategy.process(head))
    assert len(cold_span_keys(s)) == 3 * sum(1 for m in head if m.value != garbage[2])

    port = free_port()
    proc = ServiceProcess("coldtier", _env(s), port, tmp_path / "cold1.log").start()
    try:
        wait_until(lambda: len(cold_span_keys(s)) >= 60, 60, "first commits")
        proc.kill()  # SIGKILL while batches are still being committed
    finally:
        proc.kill()
    assert len(cold_span_keys(s)) < 180, "killed too late to prove anything"
    proc2 = ServiceProcess("coldtier", _env(s), port, tmp_path / "cold2.log").start()
    try:
        wait_until(lambda: len(cold_span_keys(s)) >= 180, 60, "all spans")
        keys = cold_span_keys(s)
        assert len(keys) == 180
        assert len(set(keys)) == 180, "a span was committed twice"
        assert {t for t, _ in keys} == {t.hex() for t in ids}
        assert proc2.terminate() == 0
    finally:
        proc2.kill()
    dlq = read_topic_sync(s.kafka.bootstrap, s.topics.redacted + ".dlq", min_messages=1)
    assert any(m.value == garbage[2] for m in dlq)


def test_s3_on_moto(make_settings: Any, moto: MotoServer) -> None:
    s = make_settings(
        coldtier={
            **s3_coldtier(moto, os.urandom(4).hex()),
            "batch_max_messages": 5,
            "batch_max_wait_s": 0.2,
            "maintenance_interval_s": 0,
        }
    )
    _store_traces(s, traces=10, spans=2, timeout_s=60, what="spans on S3")
    keys = cold_span_keys(s)
    assert len(keys) == 20 == len(set(keys))
    _, tables = ensure_tables(s)
    assert tables["spans"].location().startswith("s3://cold/")


def test_a_burst_tail_of_few_big_messages_commits_once_idle(make_settings: Any) -> None:
    """A trace is two messages (spans, score set): the tail of a burst holds few messages
    but enough bytes, and is committed once the input stops, not after batch_max_wait_s."""
    s = make_settings(
        coldtier={
            "batch_max_wait_s": 600,
            "batch_idle_s": 0.3,
            "batch_idle_min_messages": 10_000,
            "batch_idle_min_bytes": 2_000,
            "maintenance_interval_s": 0,
        }
    )
    _store_traces(s, traces=5, spans=3, timeout_s=45, what="the idle tail committed")
