"""The runner against a tiny in-test OTLP TraceService (not our ingest: a scripted peer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from spanline.loadgen.runner import LoadgenConfig, LoadgenResult, TargetUnreachable, percentile, run_load


@dataclass
class ScriptedTraceService(trace_service_pb2_grpc.TraceServiceServicer):
    """Counts what arrives; ``behaviour(call_number, span_count)`` picks the answer."""

    behaviour: Callable[[int, int], grpc.StatusCode | int | None] = lambda call, spans: None
    calls: int = 0
    spans_received: int = 0
    trace_ids: set[bytes] = field(default_factory=set)
    metadata: list[dict[str, str]] = field(default_factory=list)

    async def Export(
        self, request: ExportTraceServiceRequest, context: grpc.aio.ServicerContext
    ) -> ExportTraceServiceResponse:
        self.calls += 1
        self.metadata.append({k: v for k, v in context.invocation_metadata() or ()})
        spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        outcome = self.behaviour(self.calls, len(spans))
        if isinstance(outcome, grpc.StatusCode):
            await context.abort(outcome, "scripted failure")
        self.spans_received += len(spans)
        self.trace_ids.update(s.trace_id for s in spans)
        if isinstance(outcome, int) and outcome > 0:
            return ExportTraceServiceResponse(
                partial_success=ExportTracePartialSuccess(
                    rejected_spans=outcome, error_message="too many attributes"
                )
            )
        return ExportTraceServiceResponse()


@pytest.fixture
async def service() -> AsyncIterator[tuple[ScriptedTraceService, str]]:
    servicer = ScriptedTraceService()
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


async def test_counts_acked_spans(service: tuple[ScriptedTraceService, str]) -> None:
    servicer, target = service
    result = await run_load(
        LoadgenConfig(target=target, total_spans=1050, batch=100, concurrency=4, pool_size=3)
    )
    assert servicer.spans_received == 1050
    assert servicer.calls == 11
    assert result.spans_sent == result.spans_acked == 1050
    assert result.requests_ok == 11 and result.requests_failed == 0
    assert (
        result.spans_per_s > 0 and 0 < result.latency_p50_ms <= result.latency_p99_ms <= result.latency_max_ms
    )
    # fresh trace ids per request even though the pool holds only 3 requests
    assert len(servicer.trace_ids) > 3 * 25


async def test_partial_success_rejections_are_counted(service: tuple[ScriptedTraceService, str]) -> None:
    servicer, target = service
    servicer.behaviour = lambda call, spans: 3 if call % 2 == 0 else None
    result = await run_load(
        LoadgenConfig(pool_size=2, target=target, total_spans=1000, batch=100, concurrency=2)
    )
    assert result.spans_rejected == 5 * 3
    assert result.spans_acked == 1000 - 15
    assert result.rejection_messages == ["too many attributes"]


async def test_retries_unavailable_like_an_sdk(service: tuple[ScriptedTraceService, str]) -> None:
    servicer, target = service
    codes = {1: grpc.StatusCode.UNAVAILABLE, 2: grpc.StatusCode.RESOURCE_EXHAUSTED}
    servicer.behaviour = lambda call, spans: codes.get(call)
    cfg = LoadgenConfig(
        pool_size=2, target=target, total_spans=300, batch=100, concurrency=1, retry_initial_backoff_s=0.001
    )
    result = await run_load(cfg)
    assert result.retries == 2
    assert result.retries_by_code == {"UNAVAILABLE": 1, "RESOURCE_EXHAUSTED": 1}
    assert result.spans_acked == 300 and result.requests_failed == 0
    assert servicer.calls == 5


async def test_gives_up_after_max_retries_and_counts_errors(
    service: tuple[ScriptedTraceService, str],
) -> None:
    servicer, target = service
    servicer.behaviour = lambda call, spans: grpc.StatusCode.UNAVAILABLE
    cfg = LoadgenConfig(
        pool_size=2,
        target=target,
        total_spans=200,
        batch=100,
        concurrency=1,
        max_retries=2,
        retry_initial_backoff_s=0.001,
    )
    result = await run_load(cfg)
    assert servicer.calls == 2 * 3
    assert result.errors_by_code == {"UNAVAILABLE": 2}
    assert result.spans_failed == 200 and result.spans_acked == 0


async def test_non_retryable_errors_fail_at_once(service: tuple[ScriptedTraceService, str]) -> None:
    servicer, target = service
    servicer.behaviour = lambda call, spans: grpc.StatusCode.INVALID_ARGUMENT if call == 1 else None
    result = await run_load(
        LoadgenConfig(pool_size=2, target=target, total_spans=200, batch=100, concurrency=1)
    )
    assert result.retries == 0
    assert result.errors_by_code == {"INVALID_ARGUMENT": 1}
    assert result.spans_acked == 100 and result.spans_failed == 100


async def test_api_key_metadata(service: tuple[ScriptedTraceService, str]) -> None:
    servicer, target = service
    result = await run_load(
        LoadgenConfig(pool_size=2, target=target, total_spans=100, batch=50, api_key="k-123")
    )
    assert result.spans_acked == 100
    assert [m.get("authorization") for m in servicer.metadata] == ["Bearer k-123"] * 2


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counter: list[int]) -> None:
    try:
        while data := await reader.read(65536):
            counter[0] += len(data)
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _bytes_sent_through_proxy(target: str, gzip: bool) -> int:
    """Client-to-server bytes on the wire: gRPC hides grpc-encoding from the servicer."""
    host, port = target.rsplit(":", 1)
    upstream_bytes = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(_pipe(reader, up_writer, upstream_bytes), _pipe(up_reader, writer, [0]))

    proxy = await asyncio.start_server(handle, "127.0.0.1", 0)
    proxy_port = proxy.sockets[0].getsockname()[1]
    async with proxy:
        result = await run_load(
            LoadgenConfig(
                pool_size=2, target=f"127.0.0.1:{proxy_port}", total_spans=400, batch=100, gzip=gzip, seed=3
            )
        )
        assert result.spans_acked == 400
    return upstream_bytes[0]


async def test_gzip_compresses_on_the_wire(service: tuple[ScriptedTraceService, str]) -> None:
    _, target = service
    plain = await _bytes_sent_through_proxy(target, gzip=False)
    compressed = await _bytes_sent_through_proxy(target, gzip=True)
    assert plain > 400 * 1000
    assert compressed < plain / 3


async def test_duration_bound(service: tuple[ScriptedTraceService, str]) -> None:
    servicer, target = service
    result = await run_load(
        LoadgenConfig(pool_size=2, target=target, duration_s=0.3, batch=20, concurrency=2)
    )
    assert 0.25 < result.elapsed_s < 2.0
    assert result.spans_acked == servicer.spans_received > 0


async def test_unreachable_target_is_an_error_not_a_hang() -> None:
    cfg = LoadgenConfig(
        pool_size=2,
        target="127.0.0.1:1",
        total_spans=100,
        batch=100,
        max_retries=1,
        retry_initial_backoff_s=0.001,
        timeout_s=2,
    )
    started = asyncio.get_running_loop().time()
    with pytest.raises(TargetUnreachable, match=r"127\.0\.0\.1:1"):
        await run_load(cfg)
    assert asyncio.get_running_loop().time() - started < 5


def test_config_must_be_bounded() -> None:
    with pytest.raises(ValueError, match="bounded"):
        LoadgenConfig(pool_size=2, target="127.0.0.1:4317")
    with pytest.raises(ValueError):
        LoadgenConfig(pool_size=2, target="127.0.0.1:4317", total_spans=10, concurrency=0)


def test_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 99) == 0.0


async def test_progress_is_reported_until_every_span_settled(
    service: tuple[ScriptedTraceService, str],
) -> None:
    _, target = service
    seen: list[int] = []

    def show(result: LoadgenResult, elapsed: float) -> None:
        seen.append(result.spans_acked + result.spans_rejected + result.spans_failed)

    result = await run_load(
        LoadgenConfig(pool_size=2, target=target, total_spans=1000, batch=100, concurrency=2), progress=show
    )
    assert seen and seen == sorted(seen) and seen[-1] == 1000 == result.spans_acked
