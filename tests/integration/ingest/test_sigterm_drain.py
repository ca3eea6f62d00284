"""SIGTERM during load: in-flight calls finish or fail cleanly; nothing acknowledged is lost.

The load runs in worker threads; every assertion about a response happens in the test's
own thread after the workers joined (a failed assert inside a thread is only a pytest
warning), and a worker that raised re-raises here. The signal is sent only while calls
are in flight, and the test checks afterwards that some of those calls were acknowledged
*after* the signal: the drain really had work to finish.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
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
from tests.support.threads import Workers

pytestmark = pytest.mark.integration

SPANS_PER_TRACE = 20
TRACES_PER_CALL = 8


@dataclass(frozen=True, slots=True)
class _Call:
    started: float
    ended: float
    code: grpc.StatusCode
    rejected: int  # partial_success.rejected_spans of an OK answer
    traces: tuple[bytes, ...]


class _Load:
    """Export calls from several threads; records every call, counts calls in flight."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.calls: list[_Call] = []
        self.in_flight = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def worker(self, w: int) -> None:
        client = _Client(self.port)
        n = 0
        while not self.stop.is_set():
            traces = []
            spans = []
            for _ in range(TRACES_PER_CALL):
                n += 1
                trace_id = (w + 1).to_bytes(4, "big") + n.to_bytes(12, "big")
                traces.append(trace_id)
                spans += [
                    _span(trace_id=trace_id, span_id=(i + 1).to_bytes(8, "big"), attrs=5, value="p" * 300)
                    for i in range(SPANS_PER_TRACE)
                ]
            body = _request(*spans)
            with self.lock:
                self.in_flight += 1
            started = time.monotonic()
            try:
                code, resp, _ = client.export(body)
            finally:
                ended = time.monotonic()
                with self.lock:
                    self.in_flight -= 1
            rejected = resp.partial_success.rejected_spans if resp is not None else -1
            with self.lock:
                self.calls.append(_Call(started, ended, code, rejected, tuple(traces)))
            if code != grpc.StatusCode.OK:
                time.sleep(0.05)

    def acked(self) -> int:
        with self.lock:
            return sum(1 for c in self.calls if c.code == grpc.StatusCode.OK)


def _ingest_busy(proc: ServiceProcess) -> bool:
    """Whether ingest is processing a request now (its in-flight bytes gauge)."""
    for line in proc.metrics().splitlines():
        if line.startswith("spanline_ingest_inflight_bytes "):
            return float(line.split()[1]) > 0
    raise AssertionError("ingest exports no spanline_ingest_inflight_bytes")


def test_sigterm_under_load_loses_nothing_acked(make_settings: Any, tmp_path: Path) -> None:
    settings = make_settings()
    proc = ServiceProcess("ingest", settings_env(settings), free_port(), tmp_path / "ingest.log").start()
    load = _Load(settings.ingest.port)
    workers = Workers()
    try:
        for w in range(4):
            workers.start(load.worker, w)
        deadline = time.monotonic() + 30
        while load.acked() < 20 and time.monotonic() < deadline:
            workers.raise_if_failed()
            time.sleep(0.05)
        assert load.acked() >= 20, "the load never got going"
        # Signal only while calls are in flight (spin: a call lasts tens of ms), one of them
        # inside ingest already: a call the client has sent may still wait in a queue on a
        # loaded machine, and the draining server refuses those (UNAVAILABLE).
        while True:
            workers.raise_if_failed()
            with load.lock:
                two_in_flight = load.in_flight >= 2
            if two_in_flight and _ingest_busy(proc):
                with load.lock:
                    signal_at = time.monotonic()
                    acked_before = sum(1 for c in load.calls if c.code == grpc.StatusCode.OK)
                break
            assert time.monotonic() < deadline, "no two calls were ever in flight with one in ingest"
        assert workers.alive() == 4, "a worker died before the signal"
        assert proc.proc is not None
        proc.proc.send_signal(15)
        code = proc.proc.wait(60)
    finally:
        load.stop.set()
        workers.join(30)
        proc.kill()
    workers.raise_if_failed()
    assert code == 0, proc.logs()[-2000:]

    calls = load.calls
    outcomes: dict[str, int] = {}
    for c in calls:
        outcomes[c.code.name] = outcomes.get(c.code.name, 0) + 1
    # Everything else is a clean refusal the SDK would retry, never a crash or INTERNAL.
    assert set(outcomes) <= {"OK", "UNAVAILABLE", "CANCELLED"}, outcomes
    ok = [c for c in calls if c.code == grpc.StatusCode.OK]
    assert all(c.rejected == 0 for c in ok), [c.rejected for c in ok if c.rejected]
    in_flight_at_signal = [c for c in calls if c.started < signal_at < c.ended]
    acked_after = [c for c in in_flight_at_signal if c.code == grpc.StatusCode.OK]
    assert len(in_flight_at_signal) >= 2
    # The drain finished work that was under way when SIGTERM arrived.
    assert acked_after, f"no call in flight at the signal was acknowledged: {outcomes}"
    assert len(ok) > acked_before

    acked = {t for c in ok for t in c.traces}
    msgs = read_topic_sync(
        settings.kafka.bootstrap, settings.topics.raw, min_messages=len(acked), timeout_s=60
    )
    stored: dict[bytes, set[bytes]] = {}
    for m in msgs:
        for rs in TracesData.FromString(m.value).resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    stored.setdefault(s.trace_id, set()).add(s.span_id)
    missing = [t for t in acked if len(stored.get(t, ())) < SPANS_PER_TRACE]
    assert not missing, f"{len(missing)} acknowledged traces incomplete of {len(acked)}"
    assert '"msg": "service stopped"' in proc.logs()
