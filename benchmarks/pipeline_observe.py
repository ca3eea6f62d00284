"""What the pipeline benchmark watches while it runs: CPU, RSS and stage counters per process.

One sampler thread reads every process's CPU time and RSS (with its children) every
``interval_s`` and, every ``metrics_every`` samples, the counters of each service's
``/metrics`` that say when a stage took in and let out its messages. From the timeline a
phase gets per-stage CPU, peak RSS, when each stage saw its first and last input, and how
its wall time splits into CPU, batch processing waits (produce acknowledgements, inserts,
Iceberg commits) and idle time (waiting for input or a batch timer).

The scrapes cost the services a little CPU (a few ms per second each); it is inside the
per-stage figures, as it would be under Prometheus.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil

from benchmarks.harness import metric_value

MB = 1024 * 1024


@dataclass(frozen=True)
class Watched:
    """A process to watch; ``http_port`` None for one without /metrics (the broker)."""

    name: str
    pid: int
    http_port: int | None = None


# (label in the result, metric, labels) per stage counter kept in the timeline; ``{p}`` is
# the topic prefix
_COUNTERS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("in_raw", "spanline_kafka_consumed_records_total", {"topic": "{p}.raw"}),
    ("in_redacted", "spanline_kafka_consumed_records_total", {"topic": "{p}.redacted"}),
    ("in_scores", "spanline_kafka_consumed_records_total", {"topic": "{p}.scores"}),
    ("in_partials", "spanline_kafka_consumed_records_total", {"topic": "{p}.alerter.partials"}),
    ("out_raw", "spanline_kafka_produced_records_total", {"topic": "{p}.raw"}),
    ("out_redacted", "spanline_kafka_produced_records_total", {"topic": "{p}.redacted"}),
    ("out_scores", "spanline_kafka_produced_records_total", {"topic": "{p}.scores"}),
    ("hot_span_rows", "spanline_writer_rows_written_total", {"table": "spans"}),
    ("cold_span_rows", "spanline_coldtier_rows_committed_total", {"table": "spans"}),
)
# cumulative sums and counts whose phase deltas say where a stage's wall time went
_TOTALS: tuple[tuple[str, str], ...] = (
    ("batches", "spanline_batch_records_count"),
    ("batch_records", "spanline_batch_records_sum"),
    ("batch_s", "spanline_batch_seconds_sum"),
    ("commits", "spanline_kafka_commits_total"),
    ("produce_calls", "spanline_kafka_produce_seconds_count"),
    ("produce_s", "spanline_kafka_produce_seconds_sum"),
    ("inserts", "spanline_writer_insert_seconds_count"),
    ("insert_s", "spanline_writer_insert_seconds_sum"),
    ("iceberg_commits", "spanline_coldtier_commit_seconds_count"),
    ("iceberg_commit_s", "spanline_coldtier_commit_seconds_sum"),
)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def _runqueue_wait_s(pid: int) -> float:
    """Seconds the process's live threads spent runnable but waiting for a CPU (Linux
    schedstat): time lost to other processes on the machine, not to the pipeline."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def _cpu_rss(pid: int) -> tuple[float, int, float]:
    cpu, rss, waited = 0.0, 0, 0.0
    for p in _tree(pid):
        try:
            t = p.cpu_times()
            cpu += t.user + t.system
            rss += p.memory_info().rss
        except psutil.Error:
            continue
        waited += _runqueue_wait_s(p.pid)
    return cpu, rss, waited


@dataclass
class _Series:
    cpu: list[tuple[float, float]] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)
    runq: list[tuple[float, float]] = field(default_factory=list)
    counters: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    totals: list[tuple[float, dict[str, float]]] = field(default_factory=list)


class Observer:
    """Samples ``processes`` in a thread between ``start()`` and ``stop()``."""

    def __init__(
        self, processes: Iterable[Watched], prefix: str, interval_s: float = 0.25, metrics_every: int = 2
    ) -> None:
        self.processes = list(processes)
        self.prefix = prefix
        self.interval_s = interval_s
        self.metrics_every = metrics_every
        self.series = {p.name: _Series() for p in self.processes}
        self._lock = threading.Lock()
        # whole samples one at a time, so every series stays in time order
        self._sampling = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._client = httpx.Client(timeout=2)

    def start(self) -> None:
        self.sample(scrape=True)
        self._thread.start()

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self.sample(scrape=True)
        self._client.close()

    def _loop(self) -> None:
        n = 0
        while not self._stop.wait(self.interval_s):
            n += 1
            self.sample(scrape=n % self.metrics_every == 0)

    def sample(self, scrape: bool = True) -> float:
        """Take one sample now (also called at phase boundaries); returns its time."""
        with self._sampling:
            return self._sample(scrape)

    def _sample(self, scrape: bool) -> float:
        now = time.monotonic()
        for p in self.processes:
            cpu, rss, waited = _cpu_rss(p.pid)
            counters: dict[str, float] = {}
            totals: dict[str, float] = {}
            if scrape and p.http_port is not None:
                try:
                    text = self._client.get(f"http://127.0.0.1:{p.http_port}/metrics").text
                except httpx.HTTPError:
                    text = ""
                if text:
                    for label, metric, labels in _COUNTERS:
                        want = {k: v.format(p=self.prefix) for k, v in labels.items()}
                        counters[label] = metric_value(text, metric, **want)
                    totals = {label: metric_value(text, metric) for label, metric in _TOTALS}
            with self._lock:
                s = self.series[p.name]
                s.cpu.append((now, cpu))
                s.rss.append((now, rss))
                s.runq.append((now, waited))
                for label, value in counters.items():
                    s.counters.setdefault(label, []).append((now, value))
                if totals:
                    s.totals.append((now, totals))
        return now

    # ----- what a phase [t0, t1] saw --------------------------------------------------------
    def cpu_s(self, name: str, t0: float, t1: float) -> float:
        with self._lock:
            return _at(self.series[name].cpu, t1) - _at(self.series[name].cpu, t0)

    def runqueue_wait_s(self, name: str, t0: float, t1: float) -> float:
        with self._lock:
            return _at(self.series[name].runq, t1) - _at(self.series[name].runq, t0)

    def peak_rss_mb(self, name: str, t0: float, t1: float) -> float:
        with self._lock:
            values = [v for t, v in self.series[name].rss if t0 <= t <= t1]
        return round(max(values, default=0) / MB, 1)

    def stage(self, name: str, t0: float, t1: float) -> dict[str, Any]:
        """First and last movement of each stage counter (seconds after ``t0``), and the
        phase deltas of batch, produce, insert and commit totals."""
        with self._lock:
            s = self.series[name]
            out: dict[str, Any] = {}
            for label, points in s.counters.items():
                window = [(t, v) for t, v in points if t0 - self.interval_s <= t <= t1]
                if not window:
                    continue
                base = window[0][1]
                final = window[-1][1]
                if final <= base:
                    continue
                first = next(t for t, v in window if v > base)
                last = next(t for t, v in window if v >= final)
                out[label] = {
                    "count": int(final - base),
                    "first_s": round(first - t0, 2),
                    "last_s": round(last - t0, 2),
                }
            totals = [(t, v) for t, v in s.totals if t0 - self.interval_s <= t <= t1]
            if len(totals) >= 2:
                begin, end = totals[0][1], totals[-1][1]
                out["totals"] = {
                    k: round(end[k] - begin.get(k, 0.0), 3) for k in end if end[k] > begin.get(k, 0)
                }
        return out


def _at(points: list[tuple[float, float]], t: float) -> float:
    """Value of a cumulative series at ``t`` (the last sample at or before it)."""
    best = points[0][1] if points else 0.0
    for at, value in points:
        if at > t:
            break
        best = value
    return best


def where_time_went(
    stage: dict[str, Any], cpu_s: float, wall_s: float, cpu_wait_s: float | None = None
) -> dict[str, Any]:
    """A stage's wall time in a phase: CPU, time runnable but waiting for a CPU (summed
    over threads), time inside batches not on CPU (waiting for produce acknowledgements,
    inserts, Iceberg commits, commit round trips), and the rest (waiting for input, or for
    a batch timer to fire)."""
    totals = stage.get("totals", {})
    batch_s = totals.get("batch_s", 0.0)
    out: dict[str, Any] = {
        "wall_s": round(wall_s, 2),
        "cpu_s": round(cpu_s, 2),
        "busy_share": round(cpu_s / wall_s, 3) if wall_s else 0.0,
    }
    if cpu_wait_s is not None:
        out["waiting_for_cpu_s"] = round(cpu_wait_s, 2)
    if totals:
        batches = totals.get("batches", 0.0)
        out.update(
            {
                "batches": int(batches),
                "records_per_batch": round(totals.get("batch_records", 0.0) / batches, 1) if batches else 0.0,
                "in_batch_s": round(batch_s, 2),
                "produce_wait_s": round(totals.get("produce_s", 0.0), 2),
                "produce_calls": int(totals.get("produce_calls", 0)),
                "offset_commits": int(totals.get("commits", 0)),
                "insert_s": round(totals.get("insert_s", 0.0), 2),
                "iceberg_commit_s": round(totals.get("iceberg_commit_s", 0.0), 2),
                # outside any batch: waiting for input or for the batch timer (max_wait_s)
                "outside_batches_s": round(max(0.0, wall_s - batch_s), 2),
            }
        )
    return out
