"""S3 failing under a running coldtier: it pauses (Kafka offsets stay put, lag grows, nothing
is lost) and recovers; what it commits and what scheduled maintenance did show in its
metrics."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from prometheus_client import REGISTRY

from spanline.coldtier.service import ColdtierService
from spanline.settings import Settings
from tests.integration.coldtier.conftest import (
    MotoServer,
    cold_span_keys,
    produce,
    s3_coldtier,
    span_record,
    wait_until,
)
from tests.support.kafka import committed_offsets_sync
from tests.support.services import ServiceThread


class TcpForwarder:
    """127.0.0.1:port -> ``upstream_port``, byte for byte; while ``down`` every connection is
    closed as soon as it is accepted, as an unreachable S3 endpoint behaves."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.down = False
        self.refused = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            if self.down:
                self.refused += 1
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._sock.close()


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _committed(s: Settings) -> int:
    group = s.topics.group(s.kafka, "coldtier")
    parts = [(s.topics.redacted, p) for p in range(s.topics.partitions)]
    return sum(committed_offsets_sync(s.kafka.bootstrap, group, parts).values())


def test_s3_outage_pauses_then_recovers_and_metrics_report(make_settings: Any, moto: MotoServer) -> None:
    proxy = TcpForwarder(moto.port)
    prefix = os.urandom(4).hex()
    cold = {
        "batch_max_messages": 5,
        "batch_max_wait_s": 0.2,
        "maintenance_interval_s": 1,
        "compact_min_files": 2,
        "erasure_poll_s": 0.2,
    }
    s = make_settings(
        coldtier={**s3_coldtier(moto, prefix), **cold, "s3_endpoint": f"http://127.0.0.1:{proxy.port}"}
    )
    direct = make_settings(coldtier={**s3_coldtier(moto, prefix), **cold})  # reads past the proxy
    rows0 = _metric("spanline_coldtier_rows_committed_total", table="spans")
    commits0 = _metric("spanline_coldtier_commit_seconds_count", table="spans")
    retries0 = _metric("spanline_processing_retries_total")
    # Topics first: a consumer subscribing to a topic that does not exist yet has the broker
    # create it with its default partition count, and _committed() reads only ours.
    produce(s, [])
    try:
        with ServiceThread(ColdtierService(s)):
            produce(s, [span_record(s, os.urandom(16), 2) for _ in range(5)])
            wait_until(lambda: len(cold_span_keys(direct)) >= 10, 60, "first spans on S3")
            wait_until(lambda: _committed(s) >= 5, 30, "first offsets committed")

            proxy.down = True
            try:
                produce(s, [span_record(s, os.urandom(16), 2) for _ in range(10)])
                wait_until(lambda: _metric("spanline_kafka_consumer_paused") == 1, 30, "consumer paused")
                time.sleep(2)
                assert proxy.refused > 0
                assert _committed(s) == 5  # 10 more produced, none committed: the lag grew
                assert len(cold_span_keys(direct)) == 10
                assert _metric("spanline_processing_retries_total") > retries0
            finally:
                proxy.down = False

            wait_until(lambda: len(cold_span_keys(direct)) >= 30, 90, "spans after the outage")
            wait_until(lambda: _committed(s) >= 15, 30, "offsets after the outage")
            wait_until(
                lambda: (
                    _metric("spanline_coldtier_last_maintenance_timestamp_seconds") > 0
                    and _metric("spanline_coldtier_files_per_partition_count", table="spans") > 0
                ),
                30,
                "scheduled maintenance",
            )
            assert _metric("spanline_kafka_consumer_paused") == 0
    finally:
        proxy.close()
    keys = cold_span_keys(direct)
    assert len(keys) == 30 == len(set(keys))
    assert _metric("spanline_coldtier_rows_committed_total", table="spans") - rows0 >= 30
    assert _metric("spanline_coldtier_bytes_committed_total", table="spans") > 0
    assert _metric("spanline_coldtier_commit_seconds_count", table="spans") - commits0 >= 2
    assert _metric("spanline_coldtier_maintenance_seconds_count", step="compact") > 0
    assert _metric("spanline_coldtier_maintenance_seconds_count", step="orphans") > 0
