"""Writer storage throughput: span rows/s from OTLP messages into the embedded engine.

Run from the repo root: ``python -m benchmarks.writer_bench [--spans N]``.

The corpus is deterministic (fixed seed): agent traces of 10 spans (an ``invoke_agent``
root, chat spans with GenAI attributes and ~1 KB of input/output messages each, tool spans
with JSON arguments/results), one serialized ``TracesData`` per trace, exactly the value
the writer reads from ``spanline.redacted``. The measured path is what the service does:

    SpanRows.add_bytes(message) for each message  ->  take() every batch_rows rows
    ->  ClickHouseStore.insert("spans", arrow)   (INSERT ... SELECT FROM Python(arrow))

Reported: rows/s end to end, sequential (build, then insert, then build...) and pipelined
(one insert in flight on a thread while the next batch is built: chdb releases the GIL),
the two stages separately, and bytes on disk per span (``system.parts`` of the spans table
after a final merge). A 200-message warm-up is excluded. Target: >= 50k rows/s.

Then the service itself (``--service``, on by default): ``--service-spans`` of the same corpus
(500k: 20 inserts of 25k spans) are produced to ``spanline.redacted`` of a bundled broker, a
real ``spanline run writer`` process drains the topic, and the rate is counted from the first
row visible to the last (consumer start-up excluded), with the writer's CPU seconds per span
over the same window. This is the figure a deployment sees: Kafka fetch and decompression,
headers, batching and commits included. The run must be long: the window starts once the
first insert is visible, so a run of one full batch and a partial one (30k spans) measures
only the partial batch, which waits ``batch_max_wait_s`` before it is flushed. Peak RSS (and
its anonymous part) is sampled over the same drain, the heaviest load the writer sees.

The machine is shared with other sessions, so each mode runs ``--repeat`` times and the
best run is reported (the median too), together with the build's CPU time per span
(``time.thread_time`` of the building thread: what the code costs, whatever the load) and
the load average when the run started. The compiled span builder (the default) and the
Python reference builder are also timed on the same corpus in the same run (build CPU per
span and their ratio). Results are printed and written to
``benchmarks/results/writer.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

from benchmarks.harness import (
    RssSampler,
    ServiceProc,
    bench_pipeline_env,
    drain_spans,
    metric_value,
    print_table,
    start_service,
    verdicts,
    write_result,
)
from spanline.core.broker import free_port
from spanline.core.kafka import Producer
from spanline.core.kafka.records import OutRecord, standard_headers
from spanline.core.settings import KafkaSettings, TopicSettings
from spanline.loadgen.otlp_values import key_value
from spanline.spans.object_store import LocalObjectStore, PayloadOffloader
from spanline.spans.pricing import PricingTable
from spanline.spans.rows import SpanRows
from spanline.writer.config import WriterSettings
from spanline.writer.migrate import apply_migrations
from spanline.writer.store import ClickHouseStore, RetryPolicy, connect

SEED = 20261122
TARGET_ROWS_PER_S = 50_000
TARGET_PEAK_RSS_MB = 500
SPANS_PER_TRACE = 10
MODELS = [
    ("openai", "gpt-4o-mini-2024-07-18"),
    ("anthropic", "claude-sonnet-4-5-20250929"),
    ("openai", "gpt-4.1"),
]
RESOURCE = (("service.name", "support-bot"), ("service.version", "1.4.2"), ("host.name", "pod-7"))
WORDS = (
    "the order shipment customer refund invoice tracking delayed warehouse address payment "
    "status confirm policy return window days support agent escalate ticket priority summary "
    "please thanks account number update email verify identity carrier label package"
).split()


def _prose(rng: random.Random, nbytes: int) -> str:
    out: list[str] = []
    size = 0
    while size < nbytes:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word) + 1
    return " ".join(out)


def _kv(span: Span, key: str, value: object) -> None:
    span.attributes.append(key_value(key, value))


def build_corpus(n_spans: int, seed: int = SEED) -> list[bytes]:
    """One serialized TracesData per trace of SPANS_PER_TRACE spans."""
    rng = random.Random(seed)
    messages = []
    base = (time.time_ns() // 10**9 - 600) * 10**9
    for t in range(n_spans // SPANS_PER_TRACE):
        td = TracesData()
        rs = td.resource_spans.add()
        for key, value in RESOURCE:
            rs.resource.attributes.add(key=key).value.string_value = value
        ss = rs.scope_spans.add()
        ss.scope.name = "opentelemetry.instrumentation.openai_v2"
        ss.scope.version = "2.4b0"
        trace_id = rng.getrandbits(128).to_bytes(16, "big")
        start = base + t * 3_000_000
        root = ss.spans.add(trace_id=trace_id, span_id=rng.getrandbits(64).to_bytes(8, "big"))
        root.name = "invoke_agent support"
        root.kind = Span.SPAN_KIND_INTERNAL
        root.start_time_unix_nano = start
        root.end_time_unix_nano = start + 2_500_000_000
        _kv(root, "gen_ai.operation.name", "invoke_agent")
        _kv(root, "gen_ai.agent.name", "support")
        _kv(root, "gen_ai.conversation.id", f"conv-{t % 997}")
        for i in range(1, SPANS_PER_TRACE):
            span = ss.spans.add(trace_id=trace_id, span_id=rng.getrandbits(64).to_bytes(8, "big"))
            span.parent_span_id = root.span_id
            span.start_time_unix_nano = start + i * 200_000_000
            span.end_time_unix_nano = span.start_time_unix_nano + rng.randint(50, 190) * 1_000_000
            span.kind = Span.SPAN_KIND_CLIENT
            if i % 3:
                provider, model = MODELS[(t + i) % len(MODELS)]
                span.name = f"chat {model}"
                _kv(span, "gen_ai.operation.name", "chat")
                _kv(span, "gen_ai.provider.name", provider)
                _kv(span, "gen_ai.request.model", model)
                _kv(span, "gen_ai.response.model", model)
                _kv(span, "gen_ai.usage.input_tokens", rng.randint(200, 4000))
                _kv(span, "gen_ai.usage.output_tokens", rng.randint(20, 600))
                _kv(span, "gen_ai.response.finish_reasons", ["stop"])
                _kv(span, "gen_ai.request.temperature", 0.2)
                _kv(span, "server.address", "api.example.com")
                user = {"role": "user", "parts": [{"type": "text", "content": _prose(rng, 600)}]}
                _kv(span, "gen_ai.input.messages", json.dumps([user]))
                answer = {"role": "assistant", "parts": [{"type": "text", "content": _prose(rng, 400)}]}
                _kv(span, "gen_ai.output.messages", json.dumps([answer]))
            else:
                span.name = "execute_tool lookup_order"
                _kv(span, "gen_ai.operation.name", "execute_tool")
                _kv(span, "gen_ai.tool.name", "lookup_order")
                _kv(span, "gen_ai.tool.call.id", f"call_{rng.getrandbits(48):x}")
                _kv(span, "gen_ai.tool.call.arguments", json.dumps({"query": _prose(rng, 40)}))
                _kv(span, "gen_ai.tool.call.result", json.dumps({"status": _prose(rng, 200)}))
        messages.append(td.SerializeToString())
    return messages


def _run_mode(
    store: ClickHouseStore, buf: SpanRows, corpus: list[bytes], batch_rows: int, *, pipelined: bool
) -> dict[str, float]:
    """Feed the corpus through the buffer and the store; returns timings.

    ``pipelined`` keeps one insert in flight on a worker thread while the next batch is
    built (chdb releases the GIL while it writes), as a service loop awaiting
    ``ClickHouseStore.insert_async`` for batch N while consuming batch N+1 would.
    """
    pool = ThreadPoolExecutor(max_workers=1)
    pending: Future[None] | None = None
    build_s = build_cpu_s = insert_s = wait_s = 0.0
    rows = 0
    wall = time.perf_counter()

    def flush() -> None:
        nonlocal pending, rows, build_s, build_cpu_s, insert_s, wait_s
        t = time.perf_counter()
        cpu = time.thread_time()
        table = buf.take()
        build_cpu_s += time.thread_time() - cpu
        t2 = time.perf_counter()
        build_s += t2 - t
        rows += table.num_rows
        if pipelined:
            if pending is not None:
                pending.result()
            wait_s += time.perf_counter() - t2
            pending = pool.submit(store.insert, "spans", table)
        else:
            store.insert("spans", table)
            insert_s += time.perf_counter() - t2

    for value in corpus:
        t = time.perf_counter()
        cpu = time.thread_time()
        buf.add_bytes(value, "bench", time.time_ns())
        build_cpu_s += time.thread_time() - cpu
        build_s += time.perf_counter() - t
        if len(buf) >= batch_rows:
            flush()
    if len(buf):
        flush()
    if pending is not None:
        t = time.perf_counter()
        pending.result()
        wait_s += time.perf_counter() - t
    pool.shutdown()
    wall_s = time.perf_counter() - wall
    return {
        "rows": rows,
        "wall_s": wall_s,
        "build_s": build_s,
        "build_cpu_s": build_cpu_s,
        "insert_s": insert_s,
        "wait_s": wait_s,
    }


def _build_cpu_us(buf: SpanRows, corpus: list[bytes], batch_rows: int) -> float:
    """CPU microseconds per span to build the corpus's batches (add + take), no insert."""
    cpu = time.thread_time()
    for value in corpus:
        buf.add_bytes(value, "bench", 1)
        if len(buf) >= batch_rows:
            buf.take()
    buf.take()
    return (time.thread_time() - cpu) / (len(corpus) * SPANS_PER_TRACE) * 1e6


def compare_builders(corpus: list[bytes], batch_rows: int, repeat: int) -> dict[str, object]:
    """The compiled and the Python (reference) span builder on the same corpus, in one run."""
    pricing = PricingTable.load()
    with tempfile.TemporaryDirectory(prefix="spanline-writer-bench-") as tmp:
        offloader = PayloadOffloader(LocalObjectStore(Path(tmp)), 256 * 1024)
        best: dict[str, float] = {}
        for _ in range(repeat):
            for builder in ("python", "compiled"):
                us = _build_cpu_us(SpanRows(pricing, offloader, builder), corpus, batch_rows)
                best[builder] = min(best.get(builder, us), us)
    return {
        "python_build_cpu_us_per_span": round(best["python"], 1),
        "compiled_build_cpu_us_per_span": round(best["compiled"], 1),
        "compiled_build_speedup": round(best["python"] / best["compiled"], 2),
    }


async def _fill(bootstrap: str, topic: str, corpus: list[bytes]) -> None:
    producer = Producer(KafkaSettings(bootstrap=bootstrap))
    await producer.start()
    try:
        for i in range(0, len(corpus), 1000):
            headers = standard_headers("bench", time.time_ns(), b"traces")
            await producer.send_all(
                [OutRecord(topic, value, None, headers) for value in corpus[i : i + 1000]]
            )
    finally:
        await producer.stop()


@dataclass
class MemorySampler(RssSampler):
    """Peak RSS of a process, and how much of it was anonymous (heap, buffers, the engine's
    allocations) rather than file-backed (mapped library code: the chdb library alone is
    ~220 MB of it, resident from the moment it is loaded)."""

    peak_anon_bytes: int = 0

    def sample(self) -> tuple[int, int]:
        """(rss, anonymous) bytes now."""
        info = psutil.Process(self.pid).memory_info()
        return int(info.rss), int(info.rss - info.shared)

    def _rss(self) -> int:
        try:
            rss, anon = self.sample()
        except psutil.Error:
            return 0
        self.peak_anon_bytes = max(self.peak_anon_bytes, anon)
        return rss


@contextmanager
def writer_on_backlog(corpus: list[bytes], name: str) -> Iterator[tuple[ServiceProc, int]]:
    """A real writer process (and its query port) started on a ``spanline.redacted`` topic
    prefilled with ``corpus``; stopped on exit."""
    with bench_pipeline_env(name) as (broker, workdir, env):
        query_port = free_port()
        env["SPANLINE_WRITER_QUERY_PORT"] = str(query_port)
        asyncio.run(
            _fill(broker.bootstrap, TopicSettings(prefix=env["SPANLINE_TOPICS_PREFIX"]).redacted, corpus)
        )
        service = start_service("writer", env, workdir)
        try:
            yield service, query_port
        finally:
            service.stop()


def run_service(corpus: list[bytes], timeout_s: float = 600) -> dict[str, object]:
    """A real writer process draining a prefilled ``spanline.redacted`` topic.

    Draining a full topic is the heaviest load a writer sees (every batch full, two in
    flight, merges running behind), so its memory is sampled over the same run: the idle
    figure once the writer is ready, the peak until every row is visible.
    """
    spans = len(corpus) * SPANS_PER_TRACE
    with writer_on_backlog(corpus, "writer") as (service, query_port):
        with MemorySampler(service.pid) as memory:
            idle_rss, idle_anon = memory.sample()
            seen, cpu = drain_spans(query_port, service.pid, spans, timeout_s)
        metrics = service.metrics()
    counted = seen.rows - seen.first_rows
    # None: everything landed between two polls (too few spans to see a rate)
    rate = round(counted / (seen.last_at - seen.first_at)) if counted > 0 else None
    mb = 1e6
    window = (
        f"from the first row visible to the last of a {spans}-span drain: the first insert, start-up "
        "and the group join excluded; a partial last batch would wait batch_max_wait_s first"
    )
    return {
        "service_window": window,
        "service_spans": spans,
        "service_spans_visible": seen.rows,
        "service_rows_per_s": rate,
        "service_rows_in_window": counted,
        "service_window_s": round(seen.last_at - seen.first_at, 2),
        "service_cpu_us_per_span": round(cpu / counted * 1e6, 1) if counted > 0 else None,
        "service_inserts": int(metric_value(metrics, "spanline_writer_insert_seconds_count", table="spans")),
        "service_insert_failures": int(metric_value(metrics, "spanline_writer_insert_failures_total")),
        "service_idle_rss_mb": round(idle_rss / mb),
        "service_idle_anon_mb": round(idle_anon / mb),
        "service_peak_rss_mb": round(memory.peak_bytes / mb),
        "service_peak_anon_mb": round(memory.peak_anon_bytes / mb),
    }


def run(n_spans: int, batch_rows: int, repeat: int = 3) -> dict[str, object]:
    corpus = build_corpus(n_spans)
    pricing = PricingTable.load()
    load_1m = os.getloadavg()[0]
    seq_runs: list[dict[str, float]] = []
    pipe_runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="spanline-writer-bench-") as tmp:
        dsn = f"chdb://{Path(tmp) / 'clickhouse'}"
        client = connect(dsn)
        apply_migrations(client, "bench", 30)
        store = ClickHouseStore(client, "bench", dsn=dsn, retry=RetryPolicy(0))
        offloader = PayloadOffloader(LocalObjectStore(Path(tmp) / "objects"), 256 * 1024)
        buf = SpanRows(pricing, offloader)
        # warm-up (excluded): first Arrow conversions and the first insert pay one-time costs
        _run_mode(store, buf, corpus[:200], batch_rows, pipelined=False)
        for i in range(repeat):
            client.command("TRUNCATE TABLE bench.spans")
            seq_runs.append(_run_mode(store, buf, corpus, batch_rows, pipelined=False))
            if i == 0:
                client.command("OPTIMIZE TABLE bench.spans FINAL")
                disk, disk_rows, raw = client.query(
                    "SELECT sum(bytes_on_disk), sum(rows), sum(data_uncompressed_bytes) FROM system.parts "
                    "WHERE database = 'bench' AND table = 'spans' AND active"
                ).result_rows[0]
                stored = client.query("SELECT count() FROM bench.spans FINAL").result_rows[0][0]
                priced = client.query("SELECT countIf(cost_usd IS NOT NULL) FROM bench.spans").result_rows[0][
                    0
                ]
            client.command("TRUNCATE TABLE bench.spans")
            pipe_runs.append(_run_mode(store, buf, corpus, batch_rows, pipelined=True))
        store.close()
    rows = int(seq_runs[0]["rows"])
    payload_bytes = sum(len(v) for v in corpus)

    def rate(runs: list[dict[str, float]], key: str) -> tuple[int, int]:
        rates = [r["rows"] / r[key] for r in runs]
        return round(max(rates)), round(statistics.median(rates))

    seq_best, seq_median = rate(seq_runs, "wall_s")
    pipe_best, pipe_median = rate(pipe_runs, "wall_s")
    build_best, build_median = rate(seq_runs, "build_s")
    insert_best, insert_median = rate(seq_runs, "insert_s")
    build_cpu_us = min(r["build_cpu_s"] for r in seq_runs + pipe_runs) / rows * 1e6
    return {
        "spans": rows,
        "spans_stored": int(stored),
        "spans_priced": int(priced),
        "messages": len(corpus),
        "batch_rows": batch_rows,
        "repeat": repeat,
        "load_avg_1m_at_start": round(load_1m, 2),
        "otlp_bytes_per_span": round(payload_bytes / rows, 1),
        "rows_per_s_sequential": seq_best,
        "rows_per_s_pipelined": pipe_best,
        "build_rows_per_s": build_best,
        "insert_rows_per_s": insert_best,
        "rows_per_s_sequential_median": seq_median,
        "rows_per_s_pipelined_median": pipe_median,
        "build_rows_per_s_median": build_median,
        "insert_rows_per_s_median": insert_median,
        "build_us_per_span": round(1e6 / build_best, 1),
        "build_cpu_us_per_span": round(build_cpu_us, 1),
        "build_cpu_rows_per_s": round(1e6 / build_cpu_us),
        "insert_us_per_span": round(1e6 / insert_best, 1),
        "bytes_on_disk_per_span": round(int(disk) / int(disk_rows), 1),
        "uncompressed_bytes_per_span": round(int(raw) / int(disk_rows), 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument(
        "--batch-rows",
        type=int,
        default=WriterSettings().batch_max_rows,
        help="rows per insert (default: the writer's batch_max_rows)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode; the best is reported")
    parser.add_argument(
        "--service", action=argparse.BooleanOptionalAction, default=True, help="also run the writer service"
    )
    parser.add_argument(
        "--service-spans",
        type=int,
        default=500_000,
        help="spans the service drains: 20 inserts of 25k, so one slow poll or batch moves the rate little",
    )
    args = parser.parse_args(argv)
    result = run(args.spans, args.batch_rows, args.repeat)
    result |= compare_builders(build_corpus(args.spans), args.batch_rows, args.repeat)
    target = f">= {TARGET_ROWS_PER_S}"
    checks: dict[str, tuple[Any, bool]] = {
        "storage_path_rows_per_s": (target, float(str(result["rows_per_s_pipelined"])) >= TARGET_ROWS_PER_S)
    }
    if args.service:
        service = run_service(build_corpus(args.service_spans))
        result |= service
        rate = service["service_rows_per_s"]
        # the target is the writer's, so it is judged on the service, Kafka included
        all_visible = service["service_spans_visible"] == args.service_spans
        checks["service_rows_per_s"] = (
            target,
            isinstance(rate, int) and rate >= TARGET_ROWS_PER_S and all_visible,
        )
        peak = service["service_peak_rss_mb"]
        checks["service_peak_rss_mb"] = (
            f"< {TARGET_PEAK_RSS_MB}",
            isinstance(peak, int) and peak < TARGET_PEAK_RSS_MB,
        )
    result |= verdicts(checks)
    print_table(
        "writer: OTLP messages -> Arrow rows -> embedded ClickHouse",
        [(k, str(v)) for k, v in result.items()],
    )
    path = write_result("writer", {"seed": SEED, **result})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
