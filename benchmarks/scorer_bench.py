"""Scorer alone: a real ``spanline run scorer`` draining a prefilled ``spanline.redacted``.

Run from the repo root: ``python -m benchmarks.scorer_bench [--traces N]``.

Traffic: ``spanline.loadgen`` agent traces (invoke_agent / chat / execute_tool spans with
GenAI attributes and messages, ~4.5 spans and ~6.5 KB per trace), one ``TracesData`` per
trace as ingest splits them, produced to a bundled broker before the scorer starts. The
judge is off (no endpoint configured): deterministic scorers only.

The quiet periods are set longer than the run, so no trace closes by time: every trace
stays open until the bound on open traces (``max_open_traces``, 50k by default) or on
held bytes closes the oldest (``evicted``, scored like any other). With more traces than
the bound, the scorer therefore holds the full bound while it drains: peak RSS is measured
with the windows full, and the drain rate includes decoding, holding, closing and scoring.

Progress is read from the scorer's own metrics: a trace is handled once it is open
(``spanline_scorer_open_traces``) or closed (``spanline_scorer_trace_closes_total``). The
rate window runs from the first poll that sees a handled trace to the one that sees all
of them (start-up excluded); CPU is the process's user+system time over the same window.
Targets on the 2-core machine: >= 30k spans/s, peak RSS < 400 MB.
"""

from __future__ import annotations

import argparse
import asyncio
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
from benchmarks.redactor_bench import loadgen_payloads
from benchmarks.writer_bench import _fill

TARGET_SPANS_PER_S = 30_000
TARGET_RSS_BYTES = 400 * 1024 * 1024
SPANS_PER_TRACE_ESTIMATE = 4.5  # loadgen's mix; only used to size the corpus


def _handled(metrics: str) -> tuple[int, int, float]:
    """(traces handled, traces open, scores produced) from the scorer's /metrics."""
    open_traces = int(metric_value(metrics, "spanline_scorer_open_traces"))
    closed = int(metric_value(metrics, "spanline_scorer_trace_closes_total"))
    scores = metric_value(metrics, "spanline_scorer_scores_total")
    return open_traces + closed, open_traces, scores


def run_service(payloads: list[bytes], spans: int, timeout_s: float = 300) -> dict[str, Any]:
    traces = len(payloads)
    with bench_pipeline_env("scorer") as (broker, workdir, env):
        asyncio.run(_fill(broker.bootstrap, f"{env['SPANLINE_TOPICS_PREFIX']}.redacted", payloads))
        env.update(
            {
                "SPANLINE_SCORER_QUIET_AFTER_ROOT_S": "3600",
                "SPANLINE_SCORER_QUIET_NO_ROOT_S": "3600",
                "SPANLINE_SCORER_MAX_TRACE_AGE_S": "7200",
            }
        )
        service = start_service("scorer", env, workdir)
        peak_open = 0
        first_at = last_at = 0.0
        first_handled = handled = 0
        cpu_first = cpu_last = 0.0
        scores = 0.0
        try:
            with RssSampler(service.pid) as rss:
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    handled, open_traces, scores = _handled(service.metrics())
                    now = time.monotonic()
                    peak_open = max(peak_open, open_traces)
                    if handled and not first_handled:
                        first_handled, first_at, cpu_first = handled, now, cpu_seconds(service.pid)
                    if handled >= traces:
                        last_at, cpu_last = now, cpu_seconds(service.pid)
                        break
                    time.sleep(0.2)
            metrics = service.metrics()
        finally:
            service.stop()
    if handled < traces:
        raise RuntimeError(
            f"scorer handled {handled} of {traces} traces in {timeout_s}s (log: {service.log})"
        )
    window = last_at - first_at
    counted = handled - first_handled
    counted_spans = spans * counted / traces
    return {
        "traces": traces,
        "spans": spans,
        "payload_mb": round(sum(len(p) for p in payloads) / 1e6, 1),
        "window_s": round(window, 2),
        "traces_per_s": round(counted / window) if window > 0 else None,
        "spans_per_s": round(counted_spans / window) if window > 0 else None,
        "cpu_us_per_span": round((cpu_last - cpu_first) / counted_spans * 1e6, 1) if counted else None,
        "peak_rss_mb": round(rss.peak_bytes / 2**20, 1),
        "peak_open_traces": peak_open,
        "closes_by_reason": {
            reason: int(metric_value(metrics, "spanline_scorer_trace_closes_total", reason=reason))
            for reason in ("complete", "no_root", "max_age", "evicted", "oversized", "revoked")
        },
        "scores_produced": int(scores),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--traces", type=int, default=60_000, help="traces in the prefilled topic (> 50k fills the bound)"
    )
    args = ap.parse_args(argv)
    payloads, spans = loadgen_payloads(int(args.traces * SPANS_PER_TRACE_ESTIMATE), plant_pii=False)
    result = run_service(payloads, spans)
    ok_rate = result["spans_per_s"] is not None and result["spans_per_s"] >= TARGET_SPANS_PER_S
    checks = {
        "spans_per_s": (f">= {TARGET_SPANS_PER_S}", ok_rate),
        "peak_rss_mb": (f"< {TARGET_RSS_BYTES // 2**20}", result["peak_rss_mb"] * 2**20 < TARGET_RSS_BYTES),
    }
    data = {"traffic": "loadgen, judge off", **result, **verdicts(checks)}
    path = write_result("scorer", data)
    print_table(
        "scorer draining spanline.redacted",
        [(k, str(v)) for k, v in data.items() if k not in ("targets", "met")]
        + [
            (f"target {k}", f"{t} -> {'met' if data['met'][k] else 'MISSED'}")
            for k, t in data["targets"].items()
        ],
    )
    print(f"\nwritten {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
