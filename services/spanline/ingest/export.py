"""The one Export code path behind OTLP/gRPC and OTLP/HTTP: auth -> decode -> validate and
split by trace -> produce -> answer.

Both receivers are thin adapters around :class:`ExportPipeline`: they turn their wire
request into (signal, body, decoder, headers), and a :class:`ExportFailure` into their
protocol's status (gRPC code or HTTP status). Everything that decides whether data is
stored, what is rejected and when the client must retry lives here once, so the two
protocols cannot drift apart. Nothing is acknowledged before Kafka acknowledged it.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message
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

from spanline.core.envelope import Sealer
from spanline.core.kafka import OutRecord, ProduceError, Producer
from spanline.core.kafka.records import H_ENCRYPTION, SIGNAL_LOGS, SIGNAL_TRACES, standard_headers
from spanline.ingest import metrics
from spanline.ingest.auth import ApiKeyAuth, AuthError
from spanline.ingest.limits import Limits
from spanline.ingest.split import SplitResult, split_logs, split_traces
from spanline.settings import Settings

log = logging.getLogger(__name__)


class Failure(enum.Enum):
    """Why an Export is refused as a whole, independent of the protocol that carried it."""

    INVALID = "invalid"  # the payload cannot be decoded: do not retry (gRPC INVALID_ARGUMENT, HTTP 400)
    UNAUTHENTICATED = "unauthenticated"  # missing or unknown API key (gRPC UNAUTHENTICATED, HTTP 401)
    THROTTLED = "throttled"  # over the in-flight limit: retry later (RESOURCE_EXHAUSTED, HTTP 429)
    UNAVAILABLE = "unavailable"  # Kafka down or shutting down: retry (UNAVAILABLE, HTTP 503)


class ExportFailure(Exception):
    def __init__(self, kind: Failure, details: str, retry_after_s: float | None = None) -> None:
        super().__init__(details)
        self.kind = kind
        self.details = details
        self.retry_after_s = retry_after_s


RequestT = ExportTraceServiceRequest | ExportLogsServiceRequest
Decoder = Callable[[bytes, type[Message]], Message]
"""Turns a request body into the signal's Export*ServiceRequest; raises DecodeError on a bad body."""


@dataclass(frozen=True, slots=True)
class Signal:
    """What differs between the traces and the logs endpoint; the handling is shared."""

    name: str
    header: bytes
    noun: str  # what partial_success counts
    request_type: type[Message]
    response_type: type[Message]
    split: Callable[[Message, Limits, int, bytes], SplitResult]
    partial: Callable[[int, str], Message]  # a response carrying partial_success


TRACES = Signal(
    "traces",
    SIGNAL_TRACES,
    "spans",
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
    lambda req, limits, max_record, _project: split_traces(req, limits, max_record),  # type: ignore[arg-type]
    lambda n, text: ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=n, error_message=text)
    ),
)
LOGS = Signal(
    "logs",
    SIGNAL_LOGS,
    "log records",
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
    lambda req, limits, max_record, project: split_logs(req, limits, max_record, project),  # type: ignore[arg-type]
    lambda n, text: ExportLogsServiceResponse(
        partial_success=ExportLogsPartialSuccess(rejected_log_records=n, error_message=text)
    ),
)


def decode_protobuf(body: bytes, request_type: type[Message]) -> Message:
    return request_type.FromString(body)


class ExportPipeline:
    """State shared by every receiver: one in-flight byte budget, one producer, one auth."""

    def __init__(
        self, settings: Settings, producer: Producer, auth: ApiKeyAuth, sealer: Sealer | None
    ) -> None:
        cfg = settings.ingest
        self.settings = settings
        self.producer = producer
        self.auth = auth
        self.limits = Limits(
            max_attributes=cfg.max_attributes_per_span,
            max_value_bytes=cfg.max_attribute_value_bytes,
            max_items=cfg.max_spans_per_request,
        )
        self._sealer = sealer
        self.inflight = 0
        self.stopping = False

    async def export(
        self,
        signal: Signal,
        body: bytes,
        decode: Decoder,
        headers: Iterable[tuple[str, str | bytes]],
        protocol: str,
    ) -> Message | None:
        """Store what the request holds; return the partial_success response, or None when
        everything was stored. Raises :class:`ExportFailure` when nothing may be acknowledged."""
        size = len(body)
        metrics.BYTES_RECEIVED.labels(protocol, signal.name).inc(size)
        if self.stopping:
            raise ExportFailure(Failure.UNAVAILABLE, "server is shutting down", 1.0)
        if self.inflight + size > self.settings.ingest.max_inflight_bytes:
            raise ExportFailure(
                Failure.THROTTLED, "ingest is at its in-flight limit; retry with backoff", 0.5
            )
        self.inflight += size
        metrics.INFLIGHT_BYTES.set(self.inflight)
        try:
            try:
                project = self.auth.project_for(headers)
            except AuthError as exc:
                raise ExportFailure(Failure.UNAUTHENTICATED, str(exc)) from None
            result = self._split(body, decode, signal, project)
            metrics.ITEMS_RECEIVED.labels(protocol, signal.name).inc(result.accepted + result.rejected.total)
            for reason, n in result.rejected.by_reason.items():
                metrics.ITEMS_REJECTED.labels(protocol, signal.name, reason).inc(n)
            await self._produce(result, signal, project)
            metrics.ITEMS_ACCEPTED.labels(protocol, signal.name).inc(result.accepted)
        finally:
            self.inflight -= size
            metrics.INFLIGHT_BYTES.set(self.inflight)
        rejected = result.rejected.total
        if not rejected:
            return None
        return signal.partial(rejected, result.rejected.message(signal.noun))

    def _split(self, body: bytes, decode: Decoder, signal: Signal, project: str) -> SplitResult:
        max_record = self.producer.max_record_bytes - (64 if self._sealer else 0)
        try:
            request = decode(body, signal.request_type)
            return signal.split(request, self.limits, max_record, project.encode("utf-8"))
        except DecodeError:
            raise ExportFailure(
                Failure.INVALID, f"request body is not a valid OTLP {signal.name} request"
            ) from None
        except RecursionError:
            raise ExportFailure(Failure.INVALID, "request nests values too deeply") from None

    async def _produce(self, result: SplitResult, signal: Signal, project: str) -> None:
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
                "Kafka did not acknowledge an export; answering unavailable",
                extra={"reason": exc.reason, "records": len(records)},
            )
            raise ExportFailure(Failure.UNAVAILABLE, "storage (Kafka) unavailable; retry", 1.0) from None
        metrics.RECORDS_PRODUCED.labels(signal.name).inc(len(records))
