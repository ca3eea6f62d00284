"""OTLP/gRPC receiver: TraceService/Export and LogsService/Export onto the shared pipeline.

Requests are taken as raw bytes (no generated servicer) so decoding errors and byte
accounting stay ours; the only thing this module knows is gRPC: metadata in, status
codes and RetryInfo trailers out.
"""

from __future__ import annotations

import logging
import time

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo

from spanline.core.startup import check_port_free
from spanline.ingest import metrics
from spanline.ingest.config import IngestSettings
from spanline.ingest.export import (
    LOGS,
    TRACES,
    ExportFailure,
    ExportPipeline,
    Failure,
    Signal,
    decode_protobuf,
)

log = logging.getLogger(__name__)

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
PROTOCOL = "grpc"

_CODES = {
    Failure.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    Failure.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Failure.THROTTLED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Failure.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}
CODES = tuple(c.name for c in (grpc.StatusCode.OK, *_CODES.values(), grpc.StatusCode.INTERNAL))
"""Every code this receiver counts in ``spanline_ingest_requests_total``."""


class GrpcReceiver:
    def __init__(self, cfg: IngestSettings, pipeline: ExportPipeline) -> None:
        self._cfg = cfg
        self._pipeline = pipeline
        self._server: grpc.aio.Server | None = None
        self.port = cfg.port

    async def start(self) -> None:
        cfg = self._cfg
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", cfg.max_receive_bytes),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=cfg.max_concurrent_rpcs,
        )
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    TRACE_SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._export_traces)}
                ),
                grpc.method_handlers_generic_handler(
                    LOGS_SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._export_logs)}
                ),
            )
        )
        address = f"{cfg.host}:{cfg.port}"
        check_port_free(cfg.host, cfg.port, "ingest.port")  # a named setting, not a gRPC traceback
        port = server.add_insecure_port(address)
        if port == 0:
            raise RuntimeError(f"cannot bind OTLP/gRPC on {address}")
        self.port = port
        await server.start()
        self._server = server
        log.info("OTLP/gRPC listening", extra={"address": f"{cfg.host}:{port}"})

    async def stop(self, grace_s: float) -> None:
        if self._server is not None:
            # Refuses new calls at once; in-flight calls get the grace period to finish.
            await self._server.stop(grace_s)

    @property
    def started(self) -> bool:
        return self._server is not None

    async def _export_traces(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:  # type: ignore[type-arg]
        return await self._export(request, context, TRACES)

    async def _export_logs(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:  # type: ignore[type-arg]
        return await self._export(request, context, LOGS)

    async def _export(self, request: bytes, context: grpc.aio.ServicerContext, signal: Signal) -> bytes:  # type: ignore[type-arg]
        started = time.monotonic()
        code = grpc.StatusCode.OK.name
        try:
            response = await self._pipeline.export(
                signal,
                request,
                decode_protobuf,
                context.invocation_metadata() or (),  # type: ignore[arg-type]
                PROTOCOL,
            )
            # A response without partial_success is an empty message: b"" on the wire.
            return b"" if response is None else response.SerializeToString()
        except ExportFailure as failure:
            status = _CODES[failure.kind]
            code = status.name
            trailing: tuple[tuple[str, str | bytes], ...] = ()
            if failure.retry_after_s is not None:
                delay = Duration()
                delay.FromNanoseconds(int(failure.retry_after_s * 1e9))
                trailing = (("google.rpc.retryinfo-bin", RetryInfo(retry_delay=delay).SerializeToString()),)
            context.set_trailing_metadata(trailing)
            await context.abort(status, failure.details)
            raise  # unreachable: abort raises
        except Exception:
            code = grpc.StatusCode.INTERNAL.name
            raise
        finally:
            metrics.observe_request(PROTOCOL, signal.name, code, time.monotonic() - started)
