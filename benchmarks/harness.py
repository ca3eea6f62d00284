"""Shared benchmark plumbing: a broker, services as real processes, resource sampling, JSON out.

Benchmarks compare figures measured in the same run (ratios), because the machines are
shared and noisy; absolute numbers are printed for the record only.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from spanline.core.broker import BundledBroker, free_port
from spanline.core.kafka.admin import create_topics
from spanline.core.settings import KafkaSettings, RetentionSettings, TopicSettings

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class RssSampler:
    """Peak RSS of a process (and its children) sampled every `interval_s`."""

    pid: int
    interval_s: float = 0.05
    peak_bytes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _rss(self) -> int:
        try:
            proc = psutil.Process(self.pid)
            return int(proc.memory_info().rss)
        except psutil.Error:
            return 0

    def __enter__(self) -> RssSampler:
        def loop() -> None:
            while not self._stop.is_set():
                self.peak_bytes = max(self.peak_bytes, self._rss())
                self._stop.wait(self.interval_s)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()


def cpu_seconds(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


@dataclass
class ServiceProc:
    name: str
    proc: subprocess.Popen[bytes]
    http_port: int
    log: Path
    sampler: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5).text

    def stop(self) -> None:
        sample_dir = os.environ.get("BENCH_SAMPLE_DIR")
        if sample_dir and self.proc.poll() is None:
            _write_thread_cpu(self.proc.pid, Path(sample_dir) / f"{self.name}.threads")
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.sampler is not None:
            self.sampler.wait(60)  # it writes its file once the process is gone


def _write_thread_cpu(pid: int, out: Path) -> None:
    """CPU seconds per thread name: the engine's own native threads (chdb's pools, Arrow's,
    Hyperscan has none) that no Python-level sampler sees, beside the Python threads."""
    per_name: dict[str, float] = {}
    for t in psutil.Process(pid).threads():
        try:
            name = Path(f"/proc/{pid}/task/{t.id}/comm").read_text().strip()
        except OSError:
            continue
        per_name[name] = per_name.get(name, 0.0) + t.user_time + t.system_time
    lines = [f"{cpu:8.2f}  {name}" for name, cpu in sorted(per_name.items(), key=lambda kv: -kv[1])]
    out.write_text("\n".join(lines) + "\n")


def _sample(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy attached to ``pid``; it writes ``out`` and exits when the process does."""
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        raise RuntimeError("BENCH_SAMPLE_DIR needs py-spy in the venv: pip install py-spy")
    return subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "100",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(out.with_suffix(".log"), "wb"),
    )


def start_service(name: str, env: dict[str, str], workdir: Path) -> ServiceProc:
    port = free_port()
    log = workdir / f"{name}.log"
    with open(log, "ab") as out:
        # BENCH_PROFILE_DIR=dir: each service runs under cProfile and leaves dir/<name>.prof
        # when it stops (where a stage's CPU goes; the overhead skews absolute figures)
        # BENCH_SAMPLE_DIR=dir: py-spy samples every thread, native frames included, into
        # dir/<name>.txt (collapsed stacks), from readiness until the service stops; it reads
        # the process's memory from outside, so a thread that releases the GIL (chdb,
        # Hyperscan, zstd) is seen as often as one that holds it. An in-process sampler is
        # not: it can only look when the GIL is released, which biases it towards those calls.
        profile_dir = os.environ.get("BENCH_PROFILE_DIR")
        profiler = ["-m", "cProfile", "-o", f"{profile_dir}/{name}.prof"] if profile_dir else []
        proc = subprocess.Popen(
            [sys.executable, *profiler, "-m", "spanline.cli.main", "run", name, "--http-port", str(port)],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                sample_dir = os.environ.get("BENCH_SAMPLE_DIR")
                sampler = _sample(proc.pid, Path(sample_dir) / f"{name}.txt") if sample_dir else None
                return ServiceProc(name, proc, port, log, sampler)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{name} not ready: {log.read_text()[-2000:]}")


@contextmanager
def broker(workdir: Path) -> Iterator[BundledBroker]:
    b = BundledBroker(log_path=workdir / "broker.log")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@contextmanager
def bench_pipeline_env(
    name: str, prefix: str = "bench"
) -> Iterator[tuple[BundledBroker, Path, dict[str, str]]]:
    """A work dir, a running broker with every spanline topic, and the SPANLINE_* env for
    services started against them (ingest on free gRPC and OTLP/HTTP ports, quiet logs)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"spanline-bench-{name}-"))
    with broker(workdir) as b:
        asyncio.run(
            create_topics(
                KafkaSettings(bootstrap=b.bootstrap), TopicSettings(prefix=prefix), RetentionSettings()
            )
        )
        env = {
            "SPANLINE_KAFKA_BOOTSTRAP": b.bootstrap,
            "SPANLINE_TOPICS_PREFIX": prefix,
            "SPANLINE_INGEST_PORT": str(free_port()),
            "SPANLINE_INGEST_OTLP_HTTP_PORT": str(free_port()),
            "SPANLINE_DATA_DIR": str(workdir / "data"),
            "SPANLINE_LOG_LEVEL": "warning",
        }
        yield b, workdir, env


def query_endpoint(port: int, sql: str) -> list[list[Any]]:
    """Rows of ``sql`` from a writer's local read-only query endpoint (no FINAL: plain counts)."""
    body = json.dumps({"sql": sql, "final": False}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/query",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return list(json.loads(resp.read())["rows"])


@dataclass
class RowsSeen:
    """What polling a count saw: the last count, and when rows first and last appeared."""

    rows: int = 0
    first_rows: int = 0
    first_at: float = 0.0
    last_at: float = 0.0


def wait_for_rows(
    port: int,
    sql: str,
    expected: int,
    *,
    timeout_s: float = 300,
    interval_s: float = 0.2,
    on_first: Callable[[], None] | None = None,
) -> RowsSeen:
    """Poll ``sql`` (a count) on a writer's query endpoint until it reaches ``expected``.

    ``on_first`` runs at the first poll that sees rows (to start a measurement window there).
    """
    seen = RowsSeen()
    deadline = time.monotonic() + timeout_s
    while True:
        seen.rows = int(query_endpoint(port, sql)[0][0])
        seen.last_at = time.monotonic()
        if seen.rows and not seen.first_rows:
            seen.first_rows, seen.first_at = seen.rows, seen.last_at
            if on_first is not None:
                on_first()
        if seen.rows >= expected or seen.last_at > deadline:
            return seen
        time.sleep(interval_s)


def drain_spans(port: int, pid: int, expected: int, timeout_s: float) -> tuple[RowsSeen, float]:
    """Until ``expected`` span rows are visible on a writer's query endpoint, and the
    writer process's CPU seconds from the first row visible to the last (start-up and the
    group join excluded): the window the writer and memory benchmarks report."""
    cpu_at_first = 0.0

    def window_starts() -> None:
        nonlocal cpu_at_first
        cpu_at_first = cpu_seconds(pid)

    sql = "SELECT count() FROM spans"
    seen = wait_for_rows(port, sql, expected, timeout_s=timeout_s, interval_s=0.1, on_first=window_starts)
    return seen, cpu_seconds(pid) - cpu_at_first


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include `labels` (Prometheus text format)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
    return total


def verdicts(checks: dict[str, tuple[Any, bool]]) -> dict[str, Any]:
    """``targets``, ``met`` and ``all_met`` of a result from {name: (target, passed)}, so a
    target cannot be recorded without being evaluated."""
    return {
        "targets": {k: target for k, (target, _ok) in checks.items()},
        "met": {k: bool(ok) for k, (_target, ok) in checks.items()},
        "all_met": all(ok for _target, ok in checks.values()),
    }


def check_targets(data: dict[str, Any]) -> None:
    """Every recorded target is evaluated: ``targets`` and ``met`` name the same checks,
    every verdict is a bool, and no target hides under another key (``target_*``)."""
    stray = [k for k in data if k.startswith("target") and k != "targets"]
    if stray:
        raise ValueError(f"targets recorded outside 'targets' (evaluate them there): {stray}")
    targets, met = data.get("targets", {}), data.get("met", {})
    if set(targets) != set(met) or not all(isinstance(v, bool) for v in met.values()):
        raise ValueError(f"every target needs a pass/fail verdict: targets {sorted(targets)}, met {met}")


def read_result(name: str) -> dict[str, Any] | None:
    """The committed result of benchmarks/results/<name>.json (the previous commit's run),
    else the file a previous run left there, if any: to report ratios against it (same
    machine, another time). The committed one first, so repeated runs before a commit all
    compare with the same run rather than each with the one just before it."""
    path = RESULTS / f"{name}.json"
    try:
        text = subprocess.run(
            ["git", "show", f"HEAD:{path.relative_to(RESULTS.parents[1]).as_posix()}"],
            cwd=RESULTS.parents[1],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, ValueError, subprocess.SubprocessError):
        try:
            text = path.read_text()
        except OSError:
            return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def write_result(name: str, data: dict[str, Any]) -> Path:
    check_targets(data)
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **data,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n== {title}")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
