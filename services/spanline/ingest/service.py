"""Ingest: OTLP/gRPC Export in, one Kafka record per trace out, acknowledged only when stored.

receive (grpc.aio, raw bytes so we own decoding errors and byte accounting)
-> process (auth, validate, split by trace_id, seal)
-> emit (produce to spanline.raw and wait for every acknowledgement).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError, Message
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from spanline.core.envelope import Sealer, parse_key
from spanline.core.kafka import OutRecord, ProduceError, Producer
from spanline.core.kafka.records import H_ENCRYPTION, SIGNAL_LOGS, SIGNAL_TRACES, standard_headers
from spanline.core.startup import check_port_free
from spanline.ingest import metrics
from spanline.ingest.auth import ApiKeyAuth, AuthError
from spanline.ingest.limits import Limits
from spanline.ingest.split import SplitResult, split_logs, split_traces
from spanline.settings import Settings

log = logging.getLogger(__name__)

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, details: str, retry_after_s: float | None = None) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class _Signal:
    """What differs between the traces and the logs endpoint; the handler is shared."""

    name: str
    header: bytes
    noun: str  # what partial_success counts
    split: Callable[[bytes, Limits, int, bytes], SplitResult]
    partial: Callable[[int, str], Message]  # a response carrying partial_success


_TRACES = _Signal(
    "traces",
    SIGNAL_TRACES,
    "spans",
    lambda body, limits, max_record, _project: split_traces(
        ExportTraceServiceRequest.FromString(body), limits, max_record
    ),
    lambda n, text: ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=n, error_message=text)
    ),
)
_LOGS = _Signal(
    "logs",
    SIGNAL_LOGS,
    "log records",
    lambda body, limits, max_record, project: split_logs(
        ExportLogsServiceRequest.FromString(body), limits, max_record, project
    ),
    lambda n, text: ExportLogsServiceResponse(
        partial_success=ExportLogsPartialSuccess(rejected_log_records=n, error_message=text)
    ),
)
# A response without partial_success is an empty message: b"" on the wire.
_FULL_SUCCESS = b""


class IngestService:
    name = "ingest"

    def __init__(self, settings: Settings, producer: Producer | None = None) -> None:
        self.settings = settings
        cfg = settings.ingest
        self.producer = producer or Producer(settings.kafka)
        self.auth = ApiKeyAuth(cfg.api_keys, settings.project)
        self.limits = Limits(
            max_attributes=cfg.max_attributes_per_span,
            max_value_bytes=cfg.max_attribute_value_bytes,
            max_items=cfg.max_spans_per_request,
        )
        key = settings.security.raw_encryption_key
        self._sealer = Sealer(parse_key(key.get_secret_value())) if key and key.get_secret_value() else None
        self._server: grpc.aio.Server | None = None
        self._inflight = 0
        self._stopping = False
        self._stopped = asyncio.Event()
        self.port = cfg.port

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.settings.ingest
        if not self.auth.enabled:
            log.warning(
                "no API keys configured: every export goes to the default project",
                extra={"project": self.settings.project},
            )
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
        try:  # connect eagerly so the first export is fast; not fatal if Kafka is down now
            await self.producer.start(timeout_s=min(5.0, cfg.produce_timeout_s))
        except ProduceError as exc:
            log.warning(
                "Kafka not reachable yet; exports answer UNAVAILABLE until it is", extra={"detail": str(exc)}
            )

    async def run(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        if self._server is not None:
            # Refuses new calls at once; in-flight calls get the grace period to finish.
            await self._server.stop(self.settings.ingest.grace_period_s)
        await self.producer.stop()
        self._stopped.set()

    def ready(self) -> bool:
        return self._server is not None and not self._stopping

    # -- handlers --------------------------------------------------------------------
    async def _export_traces(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:  # type: ignore[type-arg]
        return await self._export(request, context, _TRACES)

    async def _export_logs(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:  # type: ignore[type-arg]
        return await self._export(request, context, _LOGS)

    async def _export(self, request: bytes, context: grpc.aio.ServicerContext, signal: _Signal) -> bytes:  # type: ignore[type-arg]
        started = time.monotonic()
        size = len(request)
        metrics.BYTES_RECEIVED.labels(signal.name).inc(size)
        code = "OK"
        reserved = False
        try:
            if self._stopping:
                raise _Abort(grpc.StatusCode.UNAVAILABLE, "server is shutting down", 1.0)
            if self._inflight + size > self.settings.ingest.max_inflight_bytes:
                raise _Abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "ingest is at its in-flight limit; retry with backoff",
                    0.5,
                )
            self._inflight += size
            reserved = True
            metrics.INFLIGHT_BYTES.set(self._inflight)
            try:
                project = self.auth.project_for(context.invocation_metadata())  # type: ignore[arg-type]
            except AuthError as exc:
                raise _Abort(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None
            result = self._split(request, signal, project)
            metrics.ITEMS_RECEIVED.labels(signal.name).inc(result.accepted + result.rejected.total)
            for reason, n in result.rejected.by_reason.items():
                metrics.ITEMS_REJECTED.labels(signal.name, reason).inc(n)
            await self._produce(result, signal, project)
            metrics.ITEMS_ACCEPTED.labels(signal.name).inc(result.accepted)
            return self._response(result, signal)
        except _Abort as abort:
            code = abort.code.name
            trailing: tuple[tuple[str, str | bytes], ...] = ()
            if abort.retry_after_s is not None:
                delay = Duration()
                delay.FromNanoseconds(int(abort.retry_after_s * 1e9))
                trailing = (("google.rpc.retryinfo-bin", RetryInfo(retry_delay=delay).SerializeToString()),)
            context.set_trailing_metadata(trailing)
            await context.abort(abort.code, abort.details)
            raise  # unreachable: abort raises
        finally:
            if reserved:
                self._inflight -= size
                metrics.INFLIGHT_BYTES.set(self._inflight)
            metrics.REQUESTS.labels(signal.name, code).inc()
            metrics.EXPORT_SECONDS.labels(signal.name).observe(time.monotonic() - started)

    def _split(self, request: bytes, signal: _Signal, project: str) -> SplitResult:
        max_record = self.producer.max_record_bytes - (64 if self._sealer else 0)
        try:
            return signal.split(request, self.limits, max_record, project.encode("utf-8"))
        except DecodeError:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"request body is not a valid OTLP {signal.name} protobuf"
            ) from None
        except RecursionError:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "request nests values too deeply") from None

    async def _produce(self, result: SplitResult, signal: _Signal, project: str) -> None:
        if not result.pieces:
            return
        headers = standard_headers(project, time.time_ns(), signal.header)
        topic = self.settings.topics.raw
        sealer = self._sealer
        if sealer is None:
            records = [OutRecord(topic, value, key, headers) for key, value, _count in result.pieces]
        else:
            headers.append((H_ENCRYPTION, sealer.header))
            records = [
                OutRecord(topic, sealer.seal(value, associated=key), key, headers)
                for key, value, _count in result.pieces
            ]
        try:
            await self.producer.send_all(records, timeout_s=self.settings.ingest.produce_timeout_s)
        except ProduceError as exc:
            log.warning(
                "Kafka did not acknowledge an export; answering UNAVAILABLE",
                extra={"reason": exc.reason, "records": len(records)},
            )
            raise _Abort(grpc.StatusCode.UNAVAILABLE, "storage (Kafka) unavailable; retry", 1.0) from None
        metrics.RECORDS_PRODUCED.labels(signal.name).inc(len(records))

    @staticmethod
    def _response(result: SplitResult, signal: _Signal) -> bytes:
        rejected = result.rejected.total
        if not rejected:
            return _FULL_SUCCESS
        return signal.partial(rejected, result.rejected.message(signal.noun)).SerializeToString()


def build(settings: Settings) -> IngestService:
    return IngestService(settings)
