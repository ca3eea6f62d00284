"""End to end: the whole pipeline as `spanline up` runs it, each service a real process.

ingest -> redactor -> scorer -> writer (ClickHouse, embedded) and coldtier (Iceberg) and
alerter, on the bundled broker, judge off, every service with its shipped settings except
the scorer's quiet period after a root span (2 s instead of 30 s: loadgen sends each
trace whole, and the scores are checked without waiting half a minute; spans, hot and
cold, do not depend on it). ``--set KEY=VALUE`` overrides a SPANLINE_* setting for an A/B
run (the result records it; the committed result uses none).

Load: ``spanline loadgen``'s heavy profile by default (5-span agent runs, OTel GenAI and
OpenInference attributes with content on every span, ~2.5 KB a span, 10% errors), in
100-span requests from 4 senders.

1. Capacity: offer ``--spans`` as fast as ingest takes them; end to end is the time from
   the first send until every acknowledged span is queryable in the hot tier (distinct
   (trace_id, span_id) in ClickHouse) AND committed to the cold tier (distinct in the
   Iceberg ``spans`` table). Per process (the six services and the broker, each with its
   children): CPU us per span over that window, and where each stage's wall time went
   (CPU, time inside batches waiting on produce acks / inserts / Iceberg commits, and time
   outside batches: waiting for input or a batch timer), with when each stage saw its
   first and last message (``benchmarks/pipeline_observe.py``).
2. Freshness: a steady ``--rate`` spans/s (5k) for ``--seconds`` with probe traces every
   ``--probe-interval``; freshness is the time from an acknowledged probe export to its
   row being queryable in the hot tier. A probe never seen counts as infinitely late.
3. Scores: every trace visible in ``spans`` has its deterministic scores in ``scores``.
4. Overload: 10x the senders (40) for ``--overload-seconds``, as fast as acknowledged
   (offering ~10x the freshness rate), then until the backlog is in both tiers; peak RSS
   per process over the phase. Targets: every service < 300 MB, the writer (embedded
   ClickHouse) < 500 MB.

Targets on a 2-core machine (issue 14): >= 10k spans/s end to end, <= 150 us CPU per span
for the whole process tree, p99 freshness <= 5 s at 5k spans/s, nothing lost, scores for
every trace, the RSS bounds. ``ratio_to_previous`` compares with the committed result (the
previous commit's run, ``harness.read_result``; absolute numbers depend on what else runs
there).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import threading
import time
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from benchmarks.harness import (
    bench_pipeline_env,
    metric_value,
    print_table,
    query_endpoint,
    read_result,
    start_service,
    verdicts,
    wait_for_rows,
    write_result,
)
from benchmarks.pipeline_observe import Observer, Watched, where_time_went
from spanline.core.broker import free_port
from spanline.loadgen.request_pool import RequestPool
from spanline.loadgen.runner import LoadgenConfig, LoadgenResult, percentile, run_load

TARGET_SPANS_S = 10_000
TARGET_CPU_US_PER_SPAN = 150
TARGET_P99_S = 5.0
TARGET_RSS_MB = 300
TARGET_WRITER_RSS_MB = 500
PREFIX = "bench"
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
# downstream consumers first, as `spanline up` starts them (components.SERVICES)
SERVICES = ("alerter", "coldtier", "writer", "scorer", "redactor", "ingest")
SENDERS = 4


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


def _send(
    target: str, pool: RequestPool, *, spans: int | None, seconds: float | None, senders: int
) -> LoadgenResult:
    cfg = LoadgenConfig(
        target=target,
        total_spans=spans,
        duration_s=seconds,
        concurrency=senders,
        batch=pool.batch,
        max_retries=200,
        retry_max_backoff_s=0.5,
        timeout_s=30,
    )
    return asyncio.run(run_load(cfg, pool))


class Tiers:
    """Polls until spans are queryable in the hot tier and committed to the cold tier."""

    _HOT_DISTINCT = "SELECT uniqExact(trace_id, span_id) FROM spans WHERE name != 'probe'"

    def __init__(self, query_port: int, writer_port: int, coldtier_port: int, data_dir: str) -> None:
        from spanline.settings import load_settings

        self.query_port = query_port
        self.writer_port = writer_port
        self.coldtier_port = coldtier_port
        self.settings = load_settings(None, data_dir=data_dir, topics={"prefix": PREFIX})

    def hot_distinct(self) -> int:
        return int(query_endpoint(self.query_port, self._HOT_DISTINCT)[0][0])

    def cold_distinct(self) -> int:
        """Distinct (trace_id, span_id) of non-probe spans in the Iceberg spans table."""
        import pyarrow.compute as pc

        from spanline.coldtier.tables import ensure_tables

        _, tables = ensure_tables(self.settings)
        table = tables["spans"]
        table.refresh()
        data = table.scan(selected_fields=("trace_id", "span_id", "name")).to_arrow()
        data = data.filter(pc.not_equal(data["name"], "probe"))
        return int(data.group_by(["trace_id", "span_id"]).aggregate([]).num_rows)

    def _hot_rows(self) -> float:
        # the writer's own counter, not a count() query: a scan of the table five times a
        # second would be the benchmark's CPU, charged to the writer
        text = httpx_get(f"http://127.0.0.1:{self.writer_port}/metrics")
        return metric_value(text, "spanline_writer_rows_written_total", table="spans")

    def _cold_rows(self) -> float:
        text = httpx_get(f"http://127.0.0.1:{self.coldtier_port}/metrics")
        return metric_value(text, "spanline_coldtier_rows_committed_total", table="spans")

    def wait(self, expected: int, timeout_s: float = 600) -> dict[str, Any]:
        """Until ``expected`` distinct spans are in both tiers (or the timeout): when each
        tier got there (monotonic) and the distinct counts seen. The services' row counters
        are polled; the distinct counts confirm them."""
        deadline = time.monotonic() + timeout_s
        hot_at = cold_at = None
        hot = cold = 0
        while time.monotonic() < deadline and (hot_at is None or cold_at is None):
            now = time.monotonic()
            # both counters include probes and replays: a necessary condition only
            if hot_at is None and self._hot_rows() >= expected:
                hot = self.hot_distinct()
                if hot >= expected:
                    hot_at = now
            if cold_at is None and self._cold_rows() >= expected:
                cold = self.cold_distinct()
                if cold >= expected:
                    cold_at = now
            time.sleep(0.2)
        if hot_at is None:
            hot = self.hot_distinct()
        if cold_at is None:
            cold = self.cold_distinct()
        return {"hot_at": hot_at, "cold_at": cold_at, "hot": hot, "cold": cold}


def httpx_get(url: str) -> str:
    import httpx

    try:
        return httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return ""


_SCORED_TRACES = (
    "SELECT uniqExact(trace_id) FROM scores WHERE name = 'error' AND evaluator_kind = 'heuristic'"
)


def _seconds(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 3)


def _ratios(now: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any] | None:
    """This run's headline figures over the previous result's (same keys only)."""
    if not before:
        return None

    def dig(d: dict[str, Any], path: str) -> float | None:
        for part in path.split("."):
            if not isinstance(d, dict) or part not in d:
                return None
            d = d[part]
        return float(d) if isinstance(d, int | float) and not isinstance(d, bool) else None

    paths = [
        "end_to_end_spans_per_s",
        "hot_spans_per_s",
        "ingest_spans_per_s",
        "cpu_us_per_span.total",
        "freshness_s.p99",
        *(f"cpu_us_per_span.{k}" for k in (*SERVICES, "broker")),
        *(f"peak_rss_mb.overload.{k}" for k in (*SERVICES, "broker")),
    ]
    out: dict[str, Any] = {}
    for path in paths:
        a, b = dig(now, path), dig(before, path)
        if a is not None and b:
            out[path] = round(a / b, 3)
    return {
        "previous_when": before.get("when"),
        "previous_profile": before.get("profile", "default"),
        "ratios": out,
    }


def _capacity_report(
    observer: Observer,
    watched: list[Watched],
    load: LoadgenResult,
    cap: dict[str, Any],
    t0: float,
    t_load: float,
    t_done: float,
    overrides: dict[str, str],
) -> dict[str, Any]:
    """Phase 1 figures of an A/B run (not written: the result file holds full runs only)."""
    observer.stop()
    expected = load.spans_acked
    window = t_done - t0
    cpu = {w.name: observer.cpu_s(w.name, t0, t_done) for w in watched}
    out = {
        "overrides": overrides,
        "spans": expected,
        "hot": cap["hot"],
        "cold": cap["cold"],
        "end_to_end_spans_per_s": round(expected / window),
        "hot_after_load_s": round((cap["hot_at"] or t_done) - t_load, 2),
        "cold_after_load_s": round((cap["cold_at"] or t_done) - t_load, 2),
        "cpu_us_per_span": {n: round(v / max(expected, 1) * 1e6, 1) for n, v in cpu.items()}
        | {"total": round(sum(cpu.values()) / max(expected, 1) * 1e6, 1)},
        "where_time_went": {
            w.name: where_time_went(
                observer.stage(w.name, t0, t_done + 1.0),
                cpu[w.name],
                window,
                observer.runqueue_wait_s(w.name, t0, t_done),
            )
            for w in watched
        },
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out, indent=1))
    return out


def _overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.startswith("SPANLINE_"):
            raise SystemExit(f"--set takes SPANLINE_KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spans", type=int, default=100_000)
    ap.add_argument("--profile", default="heavy", choices=("heavy", "default"))
    ap.add_argument("--rate", type=float, default=5_000, help="offered spans/s in the freshness phase")
    ap.add_argument("--seconds", type=float, default=20, help="duration of the freshness phase")
    ap.add_argument("--probe-interval", type=float, default=0.25)
    ap.add_argument("--overload-seconds", type=float, default=15)
    ap.add_argument("--set", action="append", default=[], metavar="SPANLINE_KEY=VALUE")
    ap.add_argument("--out", default="pipeline", help="result name (benchmarks/results/<out>.json)")
    ap.add_argument(
        "--capacity-only", action="store_true", help="phase 1 only, printed not written (for A/B runs)"
    )
    args = ap.parse_args(argv)
    overrides = _overrides(args.set)
    previous = read_result(args.out)
    with bench_pipeline_env("pipeline", prefix=PREFIX) as (b, workdir, env):
        grpc_port, query_port = int(env["SPANLINE_INGEST_PORT"]), free_port()
        env["SPANLINE_WRITER_QUERY_PORT"] = str(query_port)
        env["SPANLINE_SCORER_QUIET_AFTER_ROOT_S"] = "2"
        env.update(overrides)
        services = [start_service(name, env, workdir) for name in SERVICES]
        by_name = {s.name: s for s in services}
        target = f"127.0.0.1:{grpc_port}"
        watched = [Watched(s.name, s.pid, s.http_port) for s in services]
        watched.append(Watched("broker", b._proc.pid))  # type: ignore[union-attr]
        observer = Observer(watched, PREFIX)
        tiers = Tiers(
            query_port, by_name["writer"].http_port, by_name["coldtier"].http_port, env["SPANLINE_DATA_DIR"]
        )
        try:
            pool = RequestPool(batch=100, pool_size=64, seed=5, profile=args.profile)
            observer.start()
            # 1. capacity
            t0 = observer.sample()
            load = _send(target, pool, spans=args.spans, seconds=None, senders=SENDERS)
            t_load = time.monotonic()
            expected = load.spans_acked
            cap = tiers.wait(expected)
            t_done = observer.sample()
            if cap["hot_at"] is not None and cap["cold_at"] is not None:
                t_done = max(cap["hot_at"], cap["cold_at"])
            # a quiet second, so the capacity batches' histograms (moved just after their
            # output counters) are read before the next phase sends anything
            time.sleep(1.0)
            observer.sample()
            if args.capacity_only:
                return _capacity_report(observer, watched, load, cap, t0, t_load, t_done, overrides)
            # 2. freshness
            prober = Prober(target, query_port, args.probe_interval)
            prober.start()
            paced_acked, paced_failures = paced_load(target, pool, args.rate, args.seconds)
            prober.stop_sending()
            fresh_tiers = tiers.wait(expected + paced_acked)
            prober.wait(60)
            # 3. scores
            traces = int(query_endpoint(query_port, "SELECT uniqExact(trace_id) FROM spans")[0][0])
            scored = wait_for_rows(query_port, _SCORED_TRACES, traces, timeout_s=120).rows
            # 4. overload
            o0 = observer.sample()
            over = _send(target, pool, spans=None, seconds=args.overload_seconds, senders=10 * SENDERS)
            o_load = time.monotonic()
            total = expected + paced_acked + over.spans_acked
            over_tiers = tiers.wait(total)
            o1 = observer.sample()
            parts = query_endpoint(
                query_port,
                "SELECT sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes) FROM system.parts "
                "WHERE active AND database = 'spanline' AND table = 'spans'",
            )[0]
        finally:
            observer.stop()
            for s in services:
                s.stop()
    names = [w.name for w in watched]
    window = t_done - t0
    e2e_rate = expected / window
    hot_window = (cap["hot_at"] or t_done) - t0
    cpu = {n: observer.cpu_s(n, t0, t_done) for n in names}
    cpu_us = {n: round(v / max(expected, 1) * 1e6, 1) for n, v in cpu.items()}
    cpu_us["total"] = round(sum(cpu.values()) / max(expected, 1) * 1e6, 1)
    stages = {n: observer.stage(n, t0, t_done + 1.0) for n in names}
    time_split = {
        n: where_time_went(stages[n], cpu[n], window, observer.runqueue_wait_s(n, t0, t_done)) for n in names
    }
    rss_run = {n: observer.peak_rss_mb(n, t0, o1) for n in names}
    rss_over = {n: observer.peak_rss_mb(n, o0, o1) for n in names}
    fresh = prober.freshness()
    p50, p99 = percentile(fresh, 50), percentile(fresh, 99)
    never_seen = prober.never_seen()
    rows, on_disk, uncompressed = (int(x) for x in parts)
    services_ok = all(rss_over[n] < TARGET_RSS_MB for n in SERVICES if n != "writer")
    no_loss = (
        cap["hot"] >= expected
        and cap["cold"] >= expected
        and fresh_tiers["hot"] >= expected + paced_acked
        and fresh_tiers["cold"] >= expected + paced_acked
        and over_tiers["hot"] >= total
        and over_tiers["cold"] >= total
        and never_seen == 0
    )
    result: dict[str, Any] = {
        "profile": args.profile,
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "overrides": overrides,
        "spans_acked": expected,
        "spans_hot": cap["hot"],
        "spans_cold": cap["cold"],
        "ingest_spans_per_s": round(load.spans_per_s),
        "end_to_end_spans_per_s": round(e2e_rate),
        "hot_spans_per_s": round(expected / hot_window) if hot_window > 0 else None,
        "seconds": {
            "load": round(t_load - t0, 2),
            "hot_after_load": round((cap["hot_at"] or t_done) - t_load, 2),
            "cold_after_load": round((cap["cold_at"] or t_done) - t_load, 2),
            "end_to_end": round(window, 2),
        },
        "cpu_us_per_span": cpu_us,
        "stages": stages,
        "where_time_went": time_split,
        "freshness_phase": {
            "offered_spans_per_s": args.rate,
            "seconds": args.seconds,
            "spans_acked": paced_acked,
            "failed_requests": paced_failures,
            "all_hot": fresh_tiers["hot"] >= expected + paced_acked,
            "all_cold": fresh_tiers["cold"] >= expected + paced_acked,
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
        "overload": {
            "senders": 10 * SENDERS,
            "seconds": args.overload_seconds,
            "offered_spans_per_s": round(over.offered_spans_per_s),
            "acked_spans_per_s": round(over.spans_per_s),
            "spans_acked": over.spans_acked,
            "retries": over.retries,
            "failed_requests": over.requests_failed,
            "drain_after_load_s": round(o1 - o_load, 2),
            "all_hot": over_tiers["hot"] >= total,
            "all_cold": over_tiers["cold"] >= total,
        },
        "peak_rss_mb": {"overload": rss_over, "whole_run": rss_run},
        "bytes_on_disk_per_span": round(on_disk / max(rows, 1), 1),
        "uncompressed_bytes_per_span": round(uncompressed / max(rows, 1), 1),
        **verdicts(
            {
                "throughput": (
                    f"spans/s from first send to all in hot and cold tier >= {TARGET_SPANS_S}",
                    e2e_rate >= TARGET_SPANS_S,
                ),
                "cpu": (
                    f"CPU of the whole process tree <= {TARGET_CPU_US_PER_SPAN} us/span",
                    cpu_us["total"] <= TARGET_CPU_US_PER_SPAN,
                ),
                "freshness": (
                    f"p99 <= {TARGET_P99_S} s at {args.rate:,.0f} spans/s (a probe never seen is late)",
                    p99 <= TARGET_P99_S,
                ),
                "no_loss": ("every acknowledged span in both tiers, every probe visible", no_loss),
                "scores_visible": ("deterministic scores for 100% of traces", scored >= traces > 0),
                "rss_services": (
                    f"every service but the writer < {TARGET_RSS_MB} MB RSS under 10x overload",
                    services_ok,
                ),
                "rss_writer": (
                    f"writer (embedded ClickHouse) < {TARGET_WRITER_RSS_MB} MB RSS under 10x overload",
                    rss_over["writer"] < TARGET_WRITER_RSS_MB,
                ),
            }
        ),
    }
    result["ratio_to_previous"] = _ratios(result, previous)
    print_table(
        f"pipeline ({args.profile} profile, all six services + broker)",
        [
            ("spans acked / hot / cold", f"{expected:,} / {cap['hot']:,} / {cap['cold']:,}"),
            ("end-to-end spans/s (hot+cold)", f"{e2e_rate:,.0f}  (target >= {TARGET_SPANS_S:,})"),
            ("hot-tier spans/s", str(result["hot_spans_per_s"])),
            ("ingest-side spans/s", f"{load.spans_per_s:,.0f}"),
            ("seconds load / hot after / cold after", str(result["seconds"])),
            ("CPU us/span", f"{cpu_us}  (target total <= {TARGET_CPU_US_PER_SPAN})"),
            (
                f"freshness p50 / p99 at {args.rate:,.0f} spans/s",
                f"{p50:.2f} / {p99:.2f} s (target p99 <= {TARGET_P99_S} s)",
            ),
            (
                "probes sent / acked / seen / never seen",
                f"{prober.sent} / {len(prober.acked)} / {len(prober.seen)} / {never_seen}",
            ),
            ("traces / with scores", f"{traces:,} / {scored:,}"),
            (
                "overload offered / acked spans/s",
                f"{over.offered_spans_per_s:,.0f} / {over.spans_per_s:,.0f}",
            ),
            ("peak RSS MB under overload", str(rss_over)),
            ("bytes on disk per span", f"{on_disk / max(rows, 1):.0f} B"),
        ],
    )
    for n in names:
        print(f"  {n:<9} {time_split[n]}")
    print(f"  -> {write_result(args.out, result)}")
    return result


if __name__ == "__main__":
    main()
