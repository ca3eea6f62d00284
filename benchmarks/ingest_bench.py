"""Ingest throughput, CPU per 1k spans and memory under overload (issue: foundation).

Phases, one ingest process against the bundled broker, 100-span requests:
1. throughput: enough concurrent senders to saturate ingest; spans/s acknowledged.
2. overload: 10x the senders of phase 1 against an ingest restarted with limits set so
   that they are exceeded: concurrent calls above half the phase-1 senders (gRPC refuses
   them) and in-flight bytes above a quarter of their requests (ingest refuses them), which
   also hold in phase 3 and the recovery check. Senders retry with backoff
   as an SDK does. The phase records rejections per limit, retries and peak RSS, and the
   run fails its "overload" target if no call was refused.
3. Kafka frozen (SIGSTOP) under load: capacity zero, so everything offered is "10x more
   than it can take"; ingest must answer UNAVAILABLE and stay within its memory bound.
Targets on a 2-core machine: >= 30k spans/s acknowledged, peak RSS < 300 MB, the overload
phase had calls refused at a limit, and nothing was acknowledged while Kafka was frozen.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from typing import Any

from benchmarks.harness import (
    RssSampler,
    bench_pipeline_env,
    cpu_seconds,
    metric_value,
    print_table,
    start_service,
    verdicts,
    write_result,
)
from spanline.loadgen.request_pool import RequestPool
from spanline.loadgen.runner import LoadgenConfig, LoadgenResult, run_load

TARGET_SPANS_S = 30_000
TARGET_RSS_MB = 300


def _load(
    target: str, seconds: float, concurrency: int, pool: RequestPool, retries: int = 0
) -> LoadgenResult:
    cfg = LoadgenConfig(
        target=target,
        duration_s=seconds,
        concurrency=concurrency,
        batch=100,
        max_retries=retries,
        timeout_s=10,
    )
    return asyncio.run(run_load(cfg, pool))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=12.0, help="duration of the throughput phase")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--overload-seconds", type=float, default=8.0, help="overload and Kafka-frozen phases")
    args = ap.parse_args(argv)

    pool = RequestPool(batch=100, pool_size=64, seed=1)
    request_bytes = len(pool.next()[0])
    # Ingest takes calls off gRPC's queue only as fast as it handles them, so 10x senders
    # alone keep few calls in flight inside it: the later phases run on an ingest restarted
    # with limits below what the phase-1 senders keep in flight (calls and bytes).
    call_limit = args.concurrency // 2
    byte_limit = request_bytes * max(1, args.concurrency // 4)
    with bench_pipeline_env("ingest") as (b, workdir, env):
        grpc_port = int(env["SPANLINE_INGEST_PORT"])
        ingest = start_service("ingest", env, workdir)
        target = f"127.0.0.1:{grpc_port}"
        try:
            _load(target, 2.0, args.concurrency, pool)  # warm-up: connections, metadata, JIT-free caches
            cpu0 = cpu_seconds(ingest.pid)
            with RssSampler(ingest.pid) as rss_tp:
                tp = _load(target, args.seconds, args.concurrency, pool)
            cpu1 = cpu_seconds(ingest.pid)
            ingest.stop()
            env["SPANLINE_INGEST_MAX_CONCURRENT_RPCS"] = str(call_limit)
            env["SPANLINE_INGEST_MAX_INFLIGHT_BYTES"] = str(byte_limit)
            ingest = start_service("ingest", env, workdir)

            exhausted_before = metric_value(
                ingest.metrics(), "spanline_ingest_requests_total", code="RESOURCE_EXHAUSTED"
            )
            with RssSampler(ingest.pid) as rss_over:
                over = _load(target, args.overload_seconds, args.concurrency * 10, pool, retries=3)
            byte_limit_refusals = (
                metric_value(ingest.metrics(), "spanline_ingest_requests_total", code="RESOURCE_EXHAUSTED")
                - exhausted_before
            )

            os.kill(b._proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
            try:
                with RssSampler(ingest.pid) as rss_frozen:
                    frozen = _load(target, args.overload_seconds, args.concurrency * 10, pool)
            finally:
                os.kill(b._proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
            time.sleep(1)
            after = _load(target, 3.0, args.concurrency, pool, retries=5)
            metrics = ingest.metrics()
        finally:
            ingest.stop()

    acked_rate = tp.spans_per_s
    cpu_per_1k = (cpu1 - cpu0) / max(1, tp.spans_acked) * 1000
    peak_mb = max(rss_tp.peak_bytes, rss_over.peak_bytes, rss_frozen.peak_bytes) / 2**20
    # every RESOURCE_EXHAUSTED the senders met, first tries and retries alike
    over_exhausted = float(
        over.errors_by_code.get("RESOURCE_EXHAUSTED", 0) + over.retries_by_code.get("RESOURCE_EXHAUSTED", 0)
    )
    result = {
        "throughput": {
            "spans_per_s_acked": round(acked_rate),
            "concurrency": args.concurrency,
            "batch": 100,
            "p50_ms": round(tp.latency_p50_ms, 2),
            "p99_ms": round(tp.latency_p99_ms, 2),
            "errors": tp.errors_by_code,
            "cpu_s_per_1k_spans": round(cpu_per_1k, 4),
            "peak_rss_mb": round(rss_tp.peak_bytes / 2**20, 1),
        },
        "overload_10x_senders": {
            "concurrency": args.concurrency * 10,
            "limits": {
                "max_concurrent_rpcs": call_limit,
                "max_inflight_bytes": byte_limit,
                "request_bytes": request_bytes,
            },
            "spans_per_s_acked": round(over.spans_per_s),
            "offered_spans_per_s": round(over.offered_spans_per_s),
            "requests_ok": over.requests_ok,
            "requests_failed_after_retries": over.requests_failed,
            "errors": over.errors_by_code,
            "retries": over.retries,
            "retries_by_code": over.retries_by_code,
            "refused_at_byte_limit": byte_limit_refusals,
            "refused_at_call_limit": max(0.0, over_exhausted - byte_limit_refusals),
            "peak_rss_mb": round(rss_over.peak_bytes / 2**20, 1),
        },
        "kafka_frozen": {
            "spans_acked": frozen.spans_acked,
            "errors": frozen.errors_by_code,
            "peak_rss_mb": round(rss_frozen.peak_bytes / 2**20, 1),
        },
        "recovered_after_freeze_spans_per_s": round(after.spans_per_s),
        "rejected_by_reason": {
            "resource_exhausted": metric_value(
                metrics, "spanline_ingest_requests_total", code="RESOURCE_EXHAUSTED"
            ),
            "unavailable": metric_value(metrics, "spanline_ingest_requests_total", code="UNAVAILABLE"),
        },
        **verdicts(
            {
                "throughput": (f"acknowledged spans/s >= {TARGET_SPANS_S}", acked_rate >= TARGET_SPANS_S),
                "memory": (f"peak RSS < {TARGET_RSS_MB} MB in every phase", peak_mb < TARGET_RSS_MB),
                "overload": ("calls refused at the call or the byte limit", over_exhausted > 0),
                "kafka_frozen": ("0 spans acknowledged while Kafka is frozen", frozen.spans_acked == 0),
            }
        ),
    }
    print_table(
        "ingest",
        [
            ("spans/s acknowledged", f"{acked_rate:,.0f}  (target >= {TARGET_SPANS_S:,})"),
            ("Export p50 / p99", f"{tp.latency_p50_ms:.1f} / {tp.latency_p99_ms:.1f} ms"),
            ("CPU s per 1k spans", f"{cpu_per_1k:.4f}"),
            ("peak RSS, throughput", f"{rss_tp.peak_bytes / 2**20:.0f} MB"),
            ("peak RSS, 10x senders", f"{rss_over.peak_bytes / 2**20:.0f} MB  errors {over.errors_by_code}"),
            (
                "10x: refused at calls / bytes",
                f"{over_exhausted - byte_limit_refusals:.0f} / {byte_limit_refusals:.0f}  "
                f"retries {over.retries}",
            ),
            (
                "peak RSS, Kafka frozen",
                f"{rss_frozen.peak_bytes / 2**20:.0f} MB  errors {frozen.errors_by_code}",
            ),
            ("acked while frozen", f"{frozen.spans_acked}"),
            ("spans/s after unfreeze", f"{after.spans_per_s:,.0f}"),
        ],
    )
    path = write_result("ingest", result)
    print(f"  -> {path}")
    return result


if __name__ == "__main__":
    main()
