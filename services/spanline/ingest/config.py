"""Settings of the ingest service (section `ingest`, env `SPANLINE_INGEST_*`)."""

from __future__ import annotations

import hashlib
import re

from pydantic import Field, field_validator

from spanline.core.settings import Section

_SHA256_HEX = re.compile(r"^(sha256:)?[0-9a-f]{64}$")


def hash_api_key(key: str) -> str:
    """The form API keys are stored in: keys never sit in settings in clear text."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


class IngestSettings(Section):
    host: str = Field(default="127.0.0.1", description="bind address of OTLP/gRPC and OTLP/HTTP")
    port: int = Field(default=4317, ge=0, le=65535, description="gRPC port; 0 picks a free one")
    http_port: int = Field(default=9464, ge=0, le=65535, description="/metrics /healthz /readyz")
    otlp_http: bool = Field(default=True, description="serve OTLP/HTTP (/v1/traces, /v1/logs) next to gRPC")
    otlp_http_port: int = Field(
        default=4318, ge=0, le=65535, description="OTLP/HTTP port (protobuf and JSON); 0 picks a free one"
    )
    max_concurrent_rpcs: int = Field(
        default=256,
        ge=1,
        description="concurrent calls per protocol; beyond this gRPC answers RESOURCE_EXHAUSTED, HTTP 429",
    )
    max_receive_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="largest Export request (HTTP: compressed and decompressed; 413 above)",
    )
    max_inflight_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="above this, Export answers RESOURCE_EXHAUSTED (HTTP 429)",
    )
    max_spans_per_request: int = Field(
        default=100_000, ge=1, description="spans (or log records) beyond this in one request are rejected"
    )
    max_attributes_per_span: int = Field(
        default=1_024, ge=1, description="a span/log record with more attributes is rejected"
    )
    max_attribute_value_bytes: int = Field(
        default=4 * 1024 * 1024, ge=16, description="a span/log record with a larger value is rejected"
    )
    produce_timeout_s: float = Field(
        default=5.0, gt=0, description="Kafka ack wait before answering UNAVAILABLE (HTTP 503)"
    )
    api_keys: dict[str, str] = Field(
        default_factory=dict,
        description="sha256 of an API key -> project id (see `spanline hash-key`)",
    )
    grace_period_s: float = Field(
        default=10.0,
        ge=0,
        description="time in-flight Export calls get to finish on SIGTERM (< shutdown_grace_s)",
    )

    @field_validator("api_keys")
    @classmethod
    def _hashed_keys(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for digest, project in value.items():
            if not _SHA256_HEX.match(digest):
                raise ValueError(
                    "api_keys must map a sha256 hex digest (as printed by `spanline hash-key`) "
                    "to a project id; clear-text keys are refused"
                )
            if not project:
                raise ValueError("api_keys: project id must not be empty")
            out[digest if digest.startswith("sha256:") else "sha256:" + digest] = project
        return out
