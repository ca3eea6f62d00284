"""Async OTLP/gRPC load generator for the ingest service.

It sends pre-serialized requests through grpc.aio's generic stub (no protobuf work on
the hot path) from ``concurrency`` workers, and behaves like an OTLP SDK exporter under
back-pressure: ``UNAVAILABLE`` / ``RESOURCE_EXHAUSTED`` are retried with jittered
exponential backoff, so what it measures is what a real client would get acknowledged.
Latency is recorded per Export attempt that returned OK; failures are counted by status.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from spanline.loadgen.genai_traces import PROFILES
from spanline.loadgen.request_pool import RequestPool

EXPORT_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
DEFAULT_RETRY_CODES: tuple[grpc.StatusCode, ...] = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)
_MAX_MESSAGES_KEPT = 5
_CONNECT_TIMEOUT_S = 3.0
_PROGRESS_EVERY_S = 0.2


class TargetUnreachable(Exception):
    """Nothing answered at the target: no request was sent, so there is nothing to report."""


@dataclass(frozen=True)
class LoadgenConfig:
    """What to send and when to stop: after ``total_spans``, ``duration_s``, or both (first wins)."""

    target: str
    total_spans: int | None = None
    duration_s: float | None = None
    concurrency: int = 8
    batch: int = 100
    gzip: bool = False
    api_key: str | None = None
    seed: int = 0
    plant_pii: bool = False
    profile: str = "default"
    pool_size: int = 32
    timeout_s: float = 10.0
    max_retries: int = 5
    retry_initial_backoff_s: float = 0.05
    retry_max_backoff_s: float = 1.0
    retry_codes: tuple[grpc.StatusCode, ...] = DEFAULT_RETRY_CODES

    def __post_init__(self) -> None:
        if self.total_spans is None and self.duration_s is None:
            raise ValueError("set total_spans, duration_s or both: the run must be bounded")
        if self.total_spans is not None and self.total_spans < 1:
            raise ValueError("total_spans must be >= 1")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError("duration_s must be > 0")
        if self.concurrency < 1 or self.batch < 1 or self.pool_size < 1:
            raise ValueError("concurrency, batch and pool_size must be >= 1")
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; known: {', '.join(PROFILES)}")
        if self.max_retries < 0 or self.timeout_s <= 0:
            raise ValueError("max_retries must be >= 0 and timeout_s > 0")


@dataclass
class LoadgenResult:
    """Outcome of a run. ``spans_acked`` excludes spans the server rejected in partial_success."""

    spans_sent: int = 0
    spans_acked: int = 0
    spans_rejected: int = 0
    spans_failed: int = 0
    requests_ok: int = 0
    requests_failed: int = 0
    retries: int = 0
    retries_by_code: dict[str, int] = field(default_factory=dict)
    errors_by_code: dict[str, int] = field(default_factory=dict)
    rejection_messages: list[str] = field(default_factory=list)
    # the server's words for the first error of each status code
    error_details: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0
    spans_per_s: float = 0.0
    offered_spans_per_s: float = 0.0
    # None when no Export returned OK: there is no latency to speak of
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_max_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; 0.0 for no samples."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class _Run:
    def __init__(self, config: LoadgenConfig, pool: RequestPool) -> None:
        self.config = config
        self.pool = pool
        self.remaining = config.total_spans
        self.deadline: float | None = None
        self.latencies_ms: list[float] = []
        self.result = LoadgenResult()
        self.retries_by_code: Counter[str] = Counter()
        self.errors_by_code: Counter[str] = Counter()
        self.rng = random.Random(config.seed)

    def claim(self) -> int:
        """Spans for the next request, 0 when the run is over (single event loop: no lock)."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return 0
        if self.remaining is None:
            return self.config.batch
        n = min(self.config.batch, self.remaining)
        self.remaining -= n
        return n

    async def worker(
        self, export: grpc.aio.UnaryUnaryMultiCallable[bytes, ExportTraceServiceResponse]
    ) -> None:
        cfg = self.config
        metadata = (("authorization", f"Bearer {cfg.api_key}"),) if cfg.api_key else None
        compression = grpc.Compression.Gzip if cfg.gzip else None
        while (want := self.claim()) > 0:
            payload, spans = self.pool.next(want)
            self.result.spans_sent += spans
            attempt = 0
            while True:
                started = time.perf_counter()
                try:
                    response = await export(
                        payload, timeout=cfg.timeout_s, metadata=metadata, compression=compression
                    )
                except grpc.aio.AioRpcError as exc:
                    code = exc.code()
                    if code in cfg.retry_codes and attempt < cfg.max_retries:
                        self.retries_by_code[code.name] += 1
                        self.result.retries += 1
                        await asyncio.sleep(self._backoff(attempt))
                        attempt += 1
                        continue
                    self.errors_by_code[code.name] += 1
                    self.result.error_details.setdefault(code.name, (exc.details() or "")[:300])
                    self.result.requests_failed += 1
                    self.result.spans_failed += spans
                    break
                self.latencies_ms.append((time.perf_counter() - started) * 1000.0)
                rejected = (
                    response.partial_success.rejected_spans if response.HasField("partial_success") else 0
                )
                message = response.partial_success.error_message
                if message and len(self.result.rejection_messages) < _MAX_MESSAGES_KEPT:
                    if message not in self.result.rejection_messages:
                        self.result.rejection_messages.append(message)
                self.result.requests_ok += 1
                self.result.spans_rejected += rejected
                self.result.spans_acked += max(0, spans - rejected)
                break

    def _backoff(self, attempt: int) -> float:
        cfg = self.config
        base: float = min(cfg.retry_max_backoff_s, cfg.retry_initial_backoff_s * 2.0**attempt)
        return base * (0.5 + self.rng.random() / 2)

    def finish(self, elapsed: float) -> LoadgenResult:
        r = self.result
        r.elapsed_s = elapsed
        r.spans_per_s = r.spans_acked / elapsed if elapsed > 0 else 0.0
        r.offered_spans_per_s = r.spans_sent / elapsed if elapsed > 0 else 0.0
        lat = sorted(self.latencies_ms)
        if lat:
            r.latency_p50_ms = percentile(lat, 50)
            r.latency_p99_ms = percentile(lat, 99)
            r.latency_max_ms = lat[-1]
        r.retries_by_code = dict(self.retries_by_code)
        r.errors_by_code = dict(self.errors_by_code)
        return r


async def run_load(
    config: LoadgenConfig,
    pool: RequestPool | None = None,
    *,
    progress: Callable[[LoadgenResult, float], None] | None = None,
) -> LoadgenResult:
    """Send load to ``config.target`` until the span count or the duration is reached.

    TargetUnreachable when nothing answers there within a few seconds (before any request,
    so a wrong port is named at once instead of as retried UNAVAILABLE errors).
    ``progress`` is called with the running result and the elapsed seconds a few times a
    second and once at the end."""
    if pool is None:
        size = config.pool_size
        if config.total_spans is not None:
            size = max(1, min(size, config.total_spans // config.batch))
        pool = RequestPool(config.batch, size, config.seed, config.plant_pii, profile=config.profile)
    run = _Run(config, pool)
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", 16 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(config.target, options=options) as channel:
        export = channel.unary_unary(
            EXPORT_PATH,
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        try:
            await asyncio.wait_for(channel.channel_ready(), min(_CONNECT_TIMEOUT_S, config.timeout_s))
        except TimeoutError:
            raise TargetUnreachable(f"nothing answers OTLP/gRPC at {config.target}") from None
        started = time.monotonic()
        if config.duration_s is not None:
            run.deadline = started + config.duration_s
        workers = asyncio.gather(*(run.worker(export) for _ in range(config.concurrency)))
        if progress is not None:
            while not workers.done():
                await asyncio.wait([workers], timeout=_PROGRESS_EVERY_S)
                progress(run.result, time.monotonic() - started)
        await workers
        elapsed = time.monotonic() - started
    return run.finish(elapsed)
