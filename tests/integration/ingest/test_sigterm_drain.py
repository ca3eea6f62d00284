"""SIGTERM during load: in-flight calls finish or fail cleanly; nothing acknowledged is lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from spanline.core.broker import free_port
from tests.conftest import settings_env
from tests.integration.ingest.test_bad_input import _Client, _request, _span
from tests.support.kafka import read_topic_sync
from tests.support.services import ServiceProcess

pytestmark = pytest.mark.integration


def test_sigterm_under_load_loses_nothing_acked(make_settings: Any, tmp_path: Path) -> None:
    settings = make_settings()
    proc = ServiceProcess("ingest", settings_env(settings), free_port(), tmp_path / "ingest.log").start()
    acked: set[bytes] = set()
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def worker(w: int) -> None:
        client = _Client(settings.ingest.port)
        n = 0
        while not stop.is_set() and n < 2000:
            n += 1
            trace_id = w.to_bytes(4, "big") + n.to_bytes(12, "big")
            spans = [
                _span(trace_id=trace_id, span_id=(i + 1).to_bytes(8, "big"), attrs=5, value="p" * 200)
                for i in range(20)
            ]
            code, resp, _ = client.export(_request(*spans))
            with lock:
                outcomes[code.name] = outcomes.get(code.name, 0) + 1
                if code == grpc.StatusCode.OK:
                    assert resp is not None and resp.partial_success.rejected_spans == 0
                    acked.add(trace_id)
            if code != grpc.StatusCode.OK:
                time.sleep(0.05)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    assert acked, "no export was acknowledged before SIGTERM"
    code = proc.terminate(timeout=60)
    stop.set()
    for t in threads:
        t.join(30)
    assert code == 0, proc.logs()[-2000:]
    assert outcomes.get("OK", 0) > 0
    # Everything else is a clean refusal the SDK would retry, never a crash or INTERNAL.
    assert set(outcomes) <= {"OK", "UNAVAILABLE", "CANCELLED"}, outcomes
    msgs = read_topic_sync(
        settings.kafka.bootstrap, settings.topics.raw, min_messages=len(acked), timeout_s=60
    )
    stored: dict[bytes, int] = {}
    for m in msgs:
        for rs in TracesData.FromString(m.value).resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    stored[s.trace_id] = stored.get(s.trace_id, 0) + 1
    missing = [t for t in acked if stored.get(t, 0) < 20]
    assert not missing, f"{len(missing)} acknowledged traces missing of {len(acked)}"
    assert '"msg": "service stopped"' in proc.logs()
