"""Kafka down or frozen -> UNAVAILABLE, never OK; ingest recovers by itself when it is back."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from spanline.core.broker import BundledBroker, free_port
from spanline.ingest.service import IngestService
from tests.integration.ingest.test_bad_input import _Client, _request, _span
from tests.support.kafka import read_topic_sync
from tests.support.services import ServiceThread

pytestmark = pytest.mark.integration


def _export_until_ok(client: _Client, body: bytes, timeout_s: float = 45) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        code, _, _ = client.export(body)
        if code == grpc.StatusCode.OK:
            return time.monotonic() - start
        assert code == grpc.StatusCode.UNAVAILABLE
        time.sleep(0.5)
    raise AssertionError("ingest did not recover after the broker came back")


@pytest.fixture
def own_broker(tmp_path: Path) -> Any:
    b = BundledBroker(port=free_port(), log_path=tmp_path / "own-broker.log")
    yield b
    b.stop()


def test_broker_down_before_and_back(make_settings: Any, own_broker: BundledBroker) -> None:
    settings = make_settings(kafka={"bootstrap": own_broker.bootstrap}, ingest={"produce_timeout_s": 2.0})
    # Broker not running at all when ingest starts.
    with ServiceThread(IngestService(settings)) as svc:
        client = _Client(svc.component.port)
        code, _, details = client.export(_request(_span()))
        assert code == grpc.StatusCode.UNAVAILABLE, details
        own_broker.start()
        body = _request(_span(trace_id=b"\x0a" * 16))
        _export_until_ok(client, body)
    msgs = read_topic_sync(own_broker.bootstrap, settings.topics.raw, min_messages=1)
    assert b"\x0a" * 16 in {m.key for m in msgs}


def test_broker_dies_and_freezes_during_requests(make_settings: Any, own_broker: BundledBroker) -> None:
    own_broker.start()
    settings = make_settings(kafka={"bootstrap": own_broker.bootstrap}, ingest={"produce_timeout_s": 2.0})
    with ServiceThread(IngestService(settings)) as svc:
        client = _Client(svc.component.port)
        assert client.export(_request(_span()))[0] == grpc.StatusCode.OK

        # Frozen broker: the request is in flight when Kafka stops answering.
        pid = own_broker._proc.pid  # type: ignore[union-attr]
        os.kill(pid, signal.SIGSTOP)
        try:
            code, _, details = client.export(_request(_span(trace_id=b"\x0b" * 16)))
            assert code == grpc.StatusCode.UNAVAILABLE
            assert "Kafka" in details
        finally:
            os.kill(pid, signal.SIGCONT)

        # Dead broker.
        own_broker.stop()
        for _ in range(3):
            assert client.export(_request(_span(trace_id=b"\x0c" * 16)))[0] == grpc.StatusCode.UNAVAILABLE

        own_broker.start()
        _export_until_ok(client, _request(_span(trace_id=b"\x0d" * 16)))
    msgs = read_topic_sync(own_broker.bootstrap, settings.topics.raw, min_messages=1)
    assert b"\x0d" * 16 in {m.key for m in msgs}
