"""Memory of the writer and the coldtier draining a backlog of heavy spans: peak RSS asserted.

Run from the repo root: ``python -m benchmarks.memory_bench [--spans N] [--only writer,coldtier]``.

The pipeline benchmark measures every service under 10x overload, but a six-service run
takes minutes and mixes the causes. This one isolates the two services that hold the most
data: ``--spans`` of ``spanline loadgen``'s heavy profile (5-span agent runs carrying both
OTel GenAI and OpenInference attributes, ~2.6 KB a span, one trace a message as the redactor
emits them) are produced to ``spanline.redacted`` of a bundled broker first, then one real
service process with its shipped settings drains the topic. A full topic is the heaviest
load either sees (every batch full, two in flight), which is what overload becomes once the
upstream stages catch up.

Sampled every 20 ms from ``/proc/<pid>/status``: RSS, and its anonymous part (heap, Arrow
buffers, the embedded engine's allocations) and file-backed part (mapped libraries: chdb's
alone is ~550 MB on disk, part of which is resident from the moment it is loaded). Reported:
idle (ready, nothing consumed), peak over the drain, one second after it, the drain rate
(writer: first to last row visible in ClickHouse; coldtier: first to last Iceberg snapshot,
without a last partial batch that waited for the batch timer) and the CPU per span.

Targets (issue 14): writer with the embedded engine < 500 MB, coldtier < 300 MB. Results in
``benchmarks/results/memory.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks.harness import (
    bench_pipeline_env,
    cpu_seconds,
    drain_spans,
    print_table,
    start_service,
    verdicts,
    write_result,
)
from benchmarks.writer_bench import _fill, writer_on_backlog
from spanline.core.settings import TopicSettings
from spanline.loadgen.request_pool import RequestPool

SEED = 20261206
TARGET_MB = {"writer": 500, "coldtier": 300}
SPANS_PER_TRACE = 5  # the heavy profile's agent runs
MB = 1e6


def heavy_corpus(n_spans: int, seed: int = SEED) -> list[bytes]:
    """One serialized trace (``TracesData`` wire format) a message, fresh trace ids each."""
    pool = RequestPool(SPANS_PER_TRACE, pool_size=400, seed=seed, profile="heavy")
    return [pool.next()[0] for _ in range(n_spans // SPANS_PER_TRACE)]


def _status_kb(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0])
    return out


@dataclass
class Memory:
    """Peak RSS of one process and its split at that moment, sampled on a thread."""

    pid: int
    interval_s: float = 0.02
    peak: dict[str, int] = field(default_factory=dict)
    peak_anon_kb: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> dict[str, int]:
        try:
            now = _status_kb(self.pid)
        except OSError:
            return {}
        if now.get("VmRSS", 0) > self.peak.get("VmRSS", 0):
            self.peak = now
        self.peak_anon_kb = max(self.peak_anon_kb, now.get("RssAnon", 0))
        return now

    def __enter__(self) -> Memory:
        def loop() -> None:
            while not self._stop.wait(self.interval_s):
                self.sample()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _mb(status: dict[str, int]) -> dict[str, float]:
    return {
        "rss": round(status.get("VmRSS", 0) * 1024 / MB),
        "anon": round(status.get("RssAnon", 0) * 1024 / MB),
        "file": round(status.get("RssFile", 0) * 1024 / MB),
    }


def run_writer(corpus: list[bytes], timeout_s: float = 900) -> dict[str, Any]:
    spans = len(corpus) * SPANS_PER_TRACE
    with writer_on_backlog(corpus, "memory-writer") as (service, port):
        with Memory(service.pid) as memory:
            idle = memory.sample()
            seen, cpu = drain_spans(port, service.pid, spans, timeout_s)
            time.sleep(1)  # what is still held right after the drain
            after = memory.sample()
    counted = seen.rows - seen.first_rows
    window = seen.last_at - seen.first_at
    return {
        "spans": spans,
        "spans_visible": seen.rows,
        "spans_per_s": round(counted / window) if counted > 0 and window > 0 else None,
        "cpu_us_per_span": round(cpu / counted * 1e6, 1) if counted > 0 else None,
        "idle_mb": _mb(idle),
        "peak_mb": _mb(memory.peak),
        "peak_anon_mb": round(memory.peak_anon_kb * 1024 / MB),
        "after_drain_mb": _mb(after),
    }


def run_coldtier(corpus: list[bytes], timeout_s: float = 900) -> dict[str, Any]:
    from benchmarks.coldtier_bench import wait_committed
    from spanline.settings import load_settings

    spans = len(corpus) * SPANS_PER_TRACE
    with bench_pipeline_env("memory-coldtier") as (broker, workdir, env):
        prefix = env["SPANLINE_TOPICS_PREFIX"]
        asyncio.run(_fill(broker.bootstrap, TopicSettings(prefix=prefix).redacted, corpus))
        env["SPANLINE_COLDTIER_MAINTENANCE_INTERVAL_S"] = "0"
        settings = load_settings(None, data_dir=env["SPANLINE_DATA_DIR"], topics={"prefix": prefix})
        service = start_service("coldtier", env, workdir)
        try:
            with Memory(service.pid) as memory:
                idle = memory.sample()
                cpu0 = cpu_seconds(service.pid)
                snaps = wait_committed(settings, spans, timeout_s)
                cpu = cpu_seconds(service.pid) - cpu0
                time.sleep(1)
                after = memory.sample()
        finally:
            service.stop()
    committed = snaps[-1][1] if snaps else 0
    drain, tail_wait_s = _drain_snapshots(snaps, settings.coldtier.batch_max_wait_s)
    rate = None
    if len(drain) >= 2 and drain[-1][0] > drain[0][0]:
        rate = round((drain[-1][1] - drain[0][1]) / (drain[-1][0] - drain[0][0]))
    return {
        "spans": spans,
        "spans_committed": committed,
        "commits": len(snaps),
        "spans_per_s": rate,
        "tail_wait_s": tail_wait_s,
        "cpu_us_per_span": round(cpu / spans * 1e6, 1),
        "idle_mb": _mb(idle),
        "peak_mb": _mb(memory.peak),
        "peak_anon_mb": round(memory.peak_anon_kb * 1024 / MB),
        "after_drain_mb": _mb(after),
    }


def _drain_snapshots(
    snaps: list[tuple[float, int]], max_wait_s: float
) -> tuple[list[tuple[float, int]], float | None]:
    """The snapshots of the drain proper, and how long a last partial batch waited.

    A backlog ends in a batch smaller than ``batch_idle_min_messages`` whenever its size is
    not a multiple of the batch: that one waits for ``batch_max_wait_s`` (no tiny commits
    on a trickle, docs/configuration.md), and counting the wait put the drain rate anywhere
    between 3k and 48k spans/s depending on where the batches happened to split.
    """
    if len(snaps) >= 3 and snaps[-1][0] - snaps[-2][0] > max_wait_s / 2:
        return snaps[:-1], round(snaps[-1][0] - snaps[-2][0], 1)
    return snaps, None


RUNS = {"writer": run_writer, "coldtier": run_coldtier}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--spans", type=int, default=150_000, help="heavy spans in the backlog")
    ap.add_argument("--only", default="writer,coldtier", help="comma-separated: writer, coldtier")
    args = ap.parse_args(argv)
    corpus = heavy_corpus(args.spans)
    result: dict[str, Any] = {
        "spans": len(corpus) * SPANS_PER_TRACE,
        "otlp_bytes_per_span": round(sum(map(len, corpus)) / (len(corpus) * SPANS_PER_TRACE), 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    checks: dict[str, tuple[Any, bool]] = {}
    for name in (n.strip() for n in args.only.split(",") if n.strip()):
        out = result[name] = RUNS[name](corpus)
        done = out.get("spans_visible", out.get("spans_committed")) == out["spans"]
        checks[f"{name}_peak_rss_mb"] = (
            f"< {TARGET_MB[name]}",
            done and out["peak_mb"]["rss"] < TARGET_MB[name],
        )
    result.update(verdicts(checks))
    rows = [("spans", str(result["spans"]))]
    for name in RUNS:
        if name in result:
            r = result[name]
            rows += [
                (f"{name} spans/s", str(r["spans_per_s"])),
                (f"{name} CPU us/span", str(r["cpu_us_per_span"])),
                (f"{name} idle MB (rss/anon/file)", str(r["idle_mb"])),
                (f"{name} peak MB (rss/anon/file)", str(r["peak_mb"])),
                (f"{name} after drain MB", str(r["after_drain_mb"])),
            ]
    rows.append(("targets met", str(result["met"])))
    print_table("memory: writer and coldtier draining heavy spans", rows)
    print(f"wrote {write_result('memory', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
