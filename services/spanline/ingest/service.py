"""Ingest: OTLP Export in (gRPC :4317 and HTTP :4318), one Kafka record per trace out,
acknowledged only when stored.

receive (GrpcReceiver, HttpReceiver: thin protocol adapters on one event loop)
-> process (ExportPipeline: auth, decode, validate, split by trace_id, seal)
-> emit (produce to spanline.raw and wait for every acknowledgement).
"""

from __future__ import annotations

import asyncio
import logging

from spanline.core.envelope import Sealer, parse_key
from spanline.core.kafka import ProduceError, Producer
from spanline.ingest import grpc_receiver, http_receiver, metrics
from spanline.ingest.auth import ApiKeyAuth
from spanline.ingest.export import LOGS, TRACES, ExportPipeline
from spanline.ingest.grpc_receiver import LOGS_SERVICE, TRACE_SERVICE, GrpcReceiver
from spanline.ingest.http_receiver import HttpReceiver
from spanline.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["LOGS_SERVICE", "TRACE_SERVICE", "IngestService", "build"]


class IngestService:
    name = "ingest"

    def __init__(self, settings: Settings, producer: Producer | None = None) -> None:
        self.settings = settings
        cfg = settings.ingest
        self.producer = producer or Producer(settings.kafka)
        self.auth = ApiKeyAuth(cfg.api_keys, settings.project)
        key = settings.security.raw_encryption_key
        sealer = Sealer(parse_key(key.get_secret_value())) if key and key.get_secret_value() else None
        self.pipeline = ExportPipeline(settings, self.producer, self.auth, sealer)
        self.limits = self.pipeline.limits
        self._grpc = GrpcReceiver(cfg, self.pipeline)
        self._http = HttpReceiver(cfg, self.pipeline) if cfg.otlp_http else None
        self._stopping = False
        self._stopped = asyncio.Event()

    @property
    def port(self) -> int:
        """The OTLP/gRPC port (the bound one once started)."""
        return self._grpc.port

    @property
    def otlp_http_port(self) -> int | None:
        """The OTLP/HTTP port (the bound one once started); None when OTLP/HTTP is off."""
        return self._http.port if self._http is not None else None

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.settings.ingest
        codes = {grpc_receiver.PROTOCOL: grpc_receiver.CODES}
        if self._http is not None:
            codes[http_receiver.PROTOCOL] = http_receiver.CODES
        metrics.create_known_series(codes, (TRACES.name, LOGS.name))
        if not self.auth.enabled:
            log.warning(
                "no API keys configured: every export goes to the default project",
                extra={"project": self.settings.project},
            )
        await self._grpc.start()
        if self._http is not None:
            try:
                await self._http.start()
            except BaseException:
                await self._grpc.stop(0)
                raise
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
        # New exports on either protocol are refused as retryable from here on; both
        # servers stop listening at once and give calls in flight the grace period.
        self.pipeline.stopping = True
        stops = [self._grpc.stop(self.settings.ingest.grace_period_s)]
        if self._http is not None:
            stops.append(self._http.stop())
        await asyncio.gather(*stops)
        await self.producer.stop()
        self._stopped.set()

    def ready(self) -> bool:
        http_ok = self._http is None or self._http.started
        return self._grpc.started and http_ok and not self._stopping


def build(settings: Settings) -> IngestService:
    return IngestService(settings)
