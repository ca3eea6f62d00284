"""OTLP/HTTP receiver: POST /v1/traces and /v1/logs onto the shared pipeline.

Binary protobuf (`application/x-protobuf`) and OTLP/JSON (`application/json`) bodies,
optionally gzip/deflate compressed. Answers follow the OTLP/HTTP specification: 200 with
the Export response (partial_success included) in the request's encoding; 400 with a
`google.rpc.Status` body for a payload that cannot be decoded; 401 without a valid API
key; 413 for a body over `ingest.max_receive_bytes` (compressed or not); 415 for an
unknown content type or content encoding; 429 and 503 with `Retry-After` when the client
must retry (in-flight limit; Kafka down or shutting down).

aiohttp runs on the ingest process's event loop next to the gRPC server, so both share
one in-flight budget, one producer and one drain. aiohttp's own body decompression is
off: decompressing here bounds the output by the same limit as the input, so a gzip
bomb costs at most `max_receive_bytes`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import zlib
from collections.abc import Awaitable, Callable

from aiohttp import web
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc.code_pb2 import Code
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status

from spanline.core.startup import StartupError, env_var, is_addr_in_use, port_in_use
from spanline.ingest import metrics, otlp_json
from spanline.ingest.config import IngestSettings
from spanline.ingest.export import (
    LOGS,
    TRACES,
    Decoder,
    ExportFailure,
    ExportPipeline,
    Failure,
    Signal,
    decode_protobuf,
)

log = logging.getLogger(__name__)

PROTOCOL = "http"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_CONTENT_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}
_THREAD_DECOMPRESS_BYTES = 256 * 1024  # bigger bodies are inflated off the event loop

_STATUS = {
    Failure.INVALID: (400, Code.INVALID_ARGUMENT),
    Failure.UNAUTHENTICATED: (401, Code.UNAUTHENTICATED),
    Failure.THROTTLED: (429, Code.RESOURCE_EXHAUSTED),
    Failure.UNAVAILABLE: (503, Code.UNAVAILABLE),
}
_OK, _INTERNAL = 200, 500
_TOO_LARGE, _UNSUPPORTED_MEDIA = 413, 415
CODES = tuple(
    str(status)
    for status in (
        _OK,
        *(status for status, _ in _STATUS.values()),
        _TOO_LARGE,
        _UNSUPPORTED_MEDIA,
        _INTERNAL,
    )
)
"""The statuses of ``spanline_ingest_requests_total`` created at start-up: success, the
shared pipeline's refusals, this receiver's own size and encoding refusals, and a crash."""


class _Refused(Exception):
    """A refusal decided by HTTP itself (size, media type), before the shared pipeline."""

    def __init__(self, status: int, code: int, details: str, retry_after_s: float | None = None) -> None:
        super().__init__(details)
        self.status = status
        self.code = code
        self.details = details
        self.retry_after_s = retry_after_s


class HttpReceiver:
    def __init__(self, cfg: IngestSettings, pipeline: ExportPipeline) -> None:
        self._cfg = cfg
        self._pipeline = pipeline
        self._runner: web.AppRunner | None = None
        self._active = 0
        self.port = cfg.otlp_http_port

    async def start(self) -> None:
        cfg = self._cfg
        app = web.Application(client_max_size=cfg.max_receive_bytes)
        app.router.add_post("/v1/traces", self._route(TRACES))
        app.router.add_post("/v1/logs", self._route(LOGS))
        runner = web.AppRunner(
            app, access_log=None, auto_decompress=False, shutdown_timeout=cfg.grace_period_s
        )
        await runner.setup()
        site = web.TCPSite(runner, cfg.host, cfg.otlp_http_port, shutdown_timeout=cfg.grace_period_s)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            setting = "ingest.otlp_http_port"
            if is_addr_in_use(exc):
                raise port_in_use(cfg.host, cfg.otlp_http_port, setting) from None
            raise StartupError(
                f"cannot listen on {cfg.host}:{cfg.otlp_http_port} ({exc.strerror}): "
                f"check {setting} ({env_var(setting)})",
                kind="bind_failed",
            ) from None
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("OTLP/HTTP listening", extra={"address": f"{cfg.host}:{self.port}"})

    async def stop(self) -> None:
        """Stop listening; requests in flight get the grace period (they answer 503 if they
        had not reached Kafka before the pipeline started stopping)."""
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def started(self) -> bool:
        return self._runner is not None

    def _route(self, signal: Signal) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return await self._export(request, signal)

        return handle

    async def _export(self, request: web.Request, signal: Signal) -> web.Response:
        started = time.monotonic()
        media = _CONTENT_TYPES.get(request.content_type)
        status = _OK
        try:
            if media is None:
                raise _Refused(
                    _UNSUPPORTED_MEDIA,
                    Code.INVALID_ARGUMENT,
                    f"unsupported content type; send {PROTOBUF} or {JSON}",
                )
            decode: Decoder = decode_protobuf if media == PROTOBUF else otlp_json.decode
            if self._active >= self._cfg.max_concurrent_rpcs:
                raise _Refused(
                    429, Code.RESOURCE_EXHAUSTED, "too many concurrent requests; retry with backoff", 1.0
                )
            self._active += 1
            try:
                body = await self._body(request)
                response = await self._pipeline.export(
                    signal, body, decode, request.headers.items(), PROTOCOL
                )
            finally:
                self._active -= 1
            message = response if response is not None else signal.response_type()
            return web.Response(body=_encode(message, media), content_type=media)
        except ExportFailure as failure:
            status, code = _STATUS[failure.kind]
            return _error(status, code, failure.details, failure.retry_after_s, media)
        except _Refused as refused:
            status = refused.status
            return _error(status, refused.code, refused.details, refused.retry_after_s, media)
        except Exception:
            status = _INTERNAL
            raise
        finally:
            metrics.observe_request(PROTOCOL, signal.name, str(status), time.monotonic() - started)

    async def _body(self, request: web.Request) -> bytes:
        limit = self._cfg.max_receive_bytes
        if request.content_length is not None and request.content_length > limit:
            raise _Refused(_TOO_LARGE, Code.RESOURCE_EXHAUSTED, f"request body over {limit} bytes")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _Refused(_TOO_LARGE, Code.RESOURCE_EXHAUSTED, f"request body over {limit} bytes") from None
        coding = request.headers.get("Content-Encoding", "").strip().lower()
        if coding in ("", "identity"):
            return raw
        if coding not in ("gzip", "x-gzip", "deflate"):
            raise _Refused(
                _UNSUPPORTED_MEDIA, Code.INVALID_ARGUMENT, "unsupported content encoding; send gzip or none"
            )
        if len(raw) > _THREAD_DECOMPRESS_BYTES:
            return await asyncio.to_thread(_inflate, raw, limit)
        return _inflate(raw, limit)


def _inflate(data: bytes, limit: int) -> bytes:
    """gzip (several members allowed) or zlib-wrapped deflate, never more than `limit` bytes out."""
    out: list[bytes] = []
    size = 0
    rest = data
    try:
        while rest:
            inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
            chunk = inflater.decompress(rest, limit - size + 1)
            size += len(chunk)
            if size > limit:
                raise _Refused(_TOO_LARGE, Code.RESOURCE_EXHAUSTED, f"decompressed body over {limit} bytes")
            if not inflater.eof:
                raise _Refused(400, Code.INVALID_ARGUMENT, "compressed body is truncated")
            out.append(chunk)
            rest = inflater.unused_data
    except zlib.error:
        raise _Refused(400, Code.INVALID_ARGUMENT, "compressed body is not valid gzip/deflate") from None
    return b"".join(out)


def _encode(message: Message, media: str | None) -> bytes:
    return message.SerializeToString() if media == PROTOBUF else otlp_json.encode(message)


def _error(
    status: int, code: int, details: str, retry_after_s: float | None, media: str | None
) -> web.Response:
    """A google.rpc.Status body in the request's encoding (JSON when it had none we know)."""
    rpc_status = Status(code=code, message=details)
    headers: dict[str, str] = {}
    if retry_after_s is not None:
        delay = Duration()
        delay.FromNanoseconds(int(retry_after_s * 1e9))
        detail = AnyProto()
        detail.Pack(RetryInfo(retry_delay=delay))
        rpc_status.details.append(detail)
        headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    media = media or JSON
    response = web.Response(
        status=status, body=_encode(rpc_status, media), content_type=media, headers=headers
    )
    if status == _TOO_LARGE:
        response.force_close()  # the unread rest of the body must not be parsed as a request
    return response
