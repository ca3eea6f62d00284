"""End to end: ingest -> redactor -> scorer -> writer on one machine, each a real process.

Phase 1 (capacity): offer `--spans` as fast as ingest takes them; the end-to-end rate is
distinct spans visible in ClickHouse (not spans acknowledged) divided by the time until
the last one is visible.
Phase 2 (freshness): offer a steady `--rate` spans/s for `--seconds`, with probe traces
once per `--probe-interval`; freshness is the time from an acknowledged probe export to
its row being visible to a query. Probes sent, acknowledged, seen and never seen are all
reported; a probe never seen counts as infinitely late (it fails the p99 target).
Scores: the scorer runs beside the writer (judge off) and shares the machine; after both
phases every trace visible in ``spans`` must have its deterministic scores visible in
``scores`` (counted by the ``error`` heuristic, which every trace gets). Loadgen sends each
trace whole, so the scorer's quiet period after the root is set to 2 s here (default 30 s)
to see the scores without waiting half a minute; span freshness does not depend on it.
Targets on a 2-core machine: >= 10k spans/s, freshness p99 <= 5 s, every acknowledged
span and probe visible, scores visible for 100% of traces.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import threading
import time
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from benchmarks.harness import (
    bench_pipeline_env,
    cpu_seconds,
    print_table,
    query_endpoint,
    start_service,
    verdicts,
    wait_for_rows,
    write_result,
)
from spanline.core.broker import free_port
from spanline.loadgen.request_pool import RequestPool
from spanline.loadgen.runner import LoadgenConfig, percentile, run_load

TARGET_SPANS_S = 10_000
TARGET_P99_S = 5.0
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class Prober:
    """Sends one-span probe traces and records when each becomes visible."""

    def __init__(self, target: str, query_port: int, interval_s: float) -> None:
        self.target = target
        self.query_port = query_port
        self.interval_s = interval_s
        self.sent = 0
        self.acked: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._gave_up = False
        self._threads = [
            threading.Thread(target=self._send, daemon=True),
            threading.Thread(target=self._poll, daemon=True),
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop_sending(self) -> None:
        self._stop.set()

    def _send(self) -> None:
        channel = grpc.insecure_channel(self.target)
        call = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        n = 0
        while not self._stop.is_set():
            n += 1
            trace_id = b"\xfe\xed" + n.to_bytes(14, "big")
            now = time.time_ns()
            req = ExportTraceServiceRequest()
            req.resource_spans.add().scope_spans.add().spans.append(
                Span(
                    trace_id=trace_id,
                    span_id=b"\x01" * 8,
                    name="probe",
                    start_time_unix_nano=now,
                    end_time_unix_nano=now + 1000,
                )
            )
            self.sent += 1
            try:
                call(req.SerializeToString(), timeout=30)
                self.acked[trace_id.hex()] = time.monotonic()
            except grpc.RpcError:
                pass
            self._stop.wait(self.interval_s)
        channel.close()

    def _poll(self) -> None:
        while True:
            # list(): a snapshot taken in one step while the sender thread adds probes
            pending = [t for t in list(self.acked) if t not in self.seen]
            if pending:
                ids = ",".join(f"'{t}'" for t in pending[:500])
                try:
                    rows = query_endpoint(
                        self.query_port, f"SELECT DISTINCT trace_id FROM spans WHERE trace_id IN ({ids})"
                    )
                except OSError:
                    rows = []
                now = time.monotonic()
                for (trace_id,) in rows:
                    self.seen.setdefault(trace_id, now)
            elif self._stop.is_set():
                return
            if self._gave_up:
                return
            time.sleep(0.2)

    def wait(self, timeout_s: float) -> None:
        """Until every acknowledged probe was seen, or `timeout_s` (then the rest are never seen)."""
        self._threads[1].join(timeout_s)
        self._gave_up = True

    def freshness(self) -> list[float]:
        """Seconds from ack to visible per acknowledged probe; inf for one never seen."""
        return sorted(self.seen[t] - at if t in self.seen else float("inf") for t, at in self.acked.items())

    def never_seen(self) -> int:
        return sum(1 for t in self.acked if t not in self.seen)


def paced_load(target: str, pool: RequestPool, rate: float, seconds: float) -> tuple[int, int]:
    """Send 100-span requests at `rate` spans/s from a few threads; (spans acked, failures)."""
    interval = 100 / rate
    acked = failures = 0
    lock = threading.Lock()
    next_at = [time.monotonic()]
    end = time.monotonic() + seconds

    def worker() -> None:
        nonlocal acked, failures
        channel = grpc.insecure_channel(target)
        call = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        while True:
            with lock:
                at = next_at[0]
                next_at[0] += interval
                body, spans = pool.next()
            if at > end:
                break
            delay = at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                call(body, timeout=30)
                with lock:
                    acked += spans
            except grpc.RpcError:
                with lock:
                    failures += 1
        channel.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return acked, failures


def _wait_visible(query_port: int, expected: int) -> int:
    """Distinct spans visible (raw rows: a replayed span is counted once, never twice)."""
    sql = "SELECT uniqExact(trace_id, span_id) FROM spans WHERE name != 'probe'"
    return wait_for_rows(query_port, sql, expected).rows


_SCORED_TRACES = (
    "SELECT uniqExact(trace_id) FROM scores WHERE name = 'error' AND evaluator_kind = 'heuristic'"
)


def _seconds(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 3)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spans", type=int, default=150_000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rate", type=float, default=10_000, help="offered spans/s in the freshness phase")
    ap.add_argument("--seconds", type=float, default=20, help="duration of the freshness phase")
    ap.add_argument("--probe-interval", type=float, default=0.25)
    args = ap.parse_args(argv)
    with bench_pipeline_env("pipeline") as (b, workdir, env):
        grpc_port, query_port = int(env["SPANLINE_INGEST_PORT"]), free_port()
        env["SPANLINE_WRITER_QUERY_PORT"] = str(query_port)
        env["SPANLINE_SCORER_QUIET_AFTER_ROOT_S"] = "2"
        services = [start_service(name, env, workdir) for name in ("writer", "scorer", "redactor", "ingest")]
        target = f"127.0.0.1:{grpc_port}"
        try:
            pool = RequestPool(batch=100, pool_size=64, seed=5)
            pids = {s.name: s.pid for s in services} | {"broker": b._proc.pid}  # type: ignore[union-attr]
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            started = time.monotonic()
            cfg = LoadgenConfig(
                target=target, total_spans=args.spans, concurrency=args.concurrency, batch=100, max_retries=50
            )
            load = asyncio.run(run_load(cfg, pool))
            load_done = time.monotonic()
            expected = load.spans_acked
            visible = _wait_visible(query_port, expected)
            all_visible = time.monotonic()
            cpu1 = {name: cpu_seconds(pid) for name, pid in pids.items()}

            prober = Prober(target, query_port, args.probe_interval)
            prober.start()
            paced_acked, paced_failures = paced_load(target, pool, args.rate, args.seconds)
            prober.stop_sending()
            paced_visible = _wait_visible(query_port, expected + paced_acked)
            prober.wait(60)
            traces = int(query_endpoint(query_port, "SELECT uniqExact(trace_id) FROM spans")[0][0])
            scored = wait_for_rows(query_port, _SCORED_TRACES, traces, timeout_s=120).rows
            parts = query_endpoint(
                query_port,
                "SELECT sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes) FROM system.parts "
                "WHERE active AND database = 'spanline' AND table = 'spans'",
            )[0]
        finally:
            for s in services:
                s.stop()
    e2e_rate = visible / (all_visible - started)
    fresh = prober.freshness()
    p50, p99 = percentile(fresh, 50), percentile(fresh, 99)
    never_seen = prober.never_seen()
    rows, on_disk, uncompressed = (int(x) for x in parts)
    cpu = {k: round(cpu1[k] - cpu0[k], 1) for k in cpu0}
    result = {
        "spans_acked": expected,
        "spans_visible": visible,
        "ingest_spans_per_s": round(load.spans_per_s),
        "end_to_end_spans_per_s": round(e2e_rate),
        "drain_after_load_s": round(all_visible - load_done, 2),
        "freshness_phase": {
            "offered_spans_per_s": args.rate,
            "seconds": args.seconds,
            "spans_acked": paced_acked,
            "failed_requests": paced_failures,
            "all_visible": paced_visible >= expected + paced_acked,
        },
        # null: more than that share of the probes was never seen
        "freshness_s": {"p50": _seconds(p50), "p99": _seconds(p99)},
        "probes": {
            "sent": prober.sent,
            "acked": len(prober.acked),
            "seen": len(prober.seen),
            "never_seen": never_seen,
        },
        "scores": {"traces": traces, "traces_scored": scored},
        "bytes_on_disk_per_span": round(on_disk / max(rows, 1), 1),
        "uncompressed_bytes_per_span": round(uncompressed / max(rows, 1), 1),
        "cpu_seconds_by_service": cpu,
        **verdicts(
            {
                "throughput": (f"visible spans/s >= {TARGET_SPANS_S}", e2e_rate >= TARGET_SPANS_S),
                "freshness": (f"p99 <= {TARGET_P99_S} s (a probe never seen is late)", p99 <= TARGET_P99_S),
                "no_loss": (
                    "every acknowledged span and probe visible",
                    visible >= expected and paced_visible >= expected + paced_acked and never_seen == 0,
                ),
                "scores_visible": ("deterministic scores for 100% of traces", scored >= traces > 0),
            }
        ),
    }
    print_table(
        "pipeline (ingest -> redactor -> scorer -> writer)",
        [
            ("spans acked / visible", f"{expected:,} / {visible:,}"),
            ("end-to-end spans/s", f"{e2e_rate:,.0f}  (target >= {TARGET_SPANS_S:,})"),
            ("ingest-side spans/s", f"{load.spans_per_s:,.0f}"),
            (
                f"freshness p50 / p99 at {args.rate:,.0f} spans/s",
                f"{p50:.2f} / {p99:.2f} s (target p99 <= {TARGET_P99_S} s)",
            ),
            (
                "probes sent / acked / seen / never seen",
                f"{prober.sent} / {len(prober.acked)} / {len(prober.seen)} / {never_seen}",
            ),
            ("traces / with scores", f"{traces:,} / {scored:,}"),
            ("bytes on disk per span", f"{on_disk / max(rows, 1):.0f} B"),
            ("CPU s by service", str(cpu)),
        ],
    )
    print(f"  -> {write_result('pipeline', result)}")
    return result


if __name__ == "__main__":
    main()
