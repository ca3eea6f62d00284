"""Settings sections shared by every service.

Each service owns its own section in ``<service>/config.py`` (like a Collector
component's config struct); :mod:`spanline.settings` assembles them. Values come from
``SPANLINE_<SECTION>_<KEY>`` environment variables and an optional YAML file.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class Section(BaseModel):
    """Base for settings sections: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class KafkaSettings(Section):
    bootstrap: str = Field(
        default="",
        description="host:port[,host:port]. Empty means 'use the bundled broker' under `spanline up`.",
    )
    client_id: str = Field(default="spanline", description="client id sent to the brokers")
    group_prefix: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]*$",
        description="consumer groups are '<group_prefix or topics.prefix>-<service>'; change it to replay",
    )
    compression: Literal["zstd", "gzip", "lz4", "snappy", "none"] = Field(
        default="zstd", description="producer compression (aiokafka runs gzip/lz4 at level 9: slow)"
    )
    max_batch_size: int = Field(default=256 * 1024, ge=1024, description="producer batch bytes")
    linger_ms: int = Field(default=5, ge=0, le=10_000, description="producer wait to fill a batch")
    max_request_size: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="largest record batch; bigger traces are split by ingest",
    )
    request_timeout_ms: int = Field(default=15_000, ge=500, description="Kafka request timeout")
    session_timeout_ms: int = Field(
        default=6_000, ge=1_000, description="consumer group session; the bundled broker joins in ~half of it"
    )
    heartbeat_interval_ms: int = Field(default=500, ge=100, description="consumer heartbeat period")
    fetch_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, description="consumer fetch size bound")
    max_poll_records: int = Field(default=2_000, ge=1, description="records per consumer poll")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="how to reach the brokers"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism with SASL_* protocols"
    )
    sasl_username: str | None = Field(default=None, description="SASL user")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password (secret)")


class TopicSettings(Section):
    prefix: str = Field(
        default="spanline", pattern=r"^[A-Za-z0-9._-]+$", description="topic names are <prefix>.raw, ..."
    )
    partitions: int = Field(
        default=6, ge=1, le=10_000, description="partitions per topic: the parallelism bound of every service"
    )
    replication_factor: int = Field(
        default=1, ge=1, le=7, description="replicas per partition (3 in production)"
    )

    def group(self, kafka: KafkaSettings, service: str) -> str:
        """The consumer group of a service: one group per service (the scaling unit)."""
        return f"{kafka.group_prefix or self.prefix}-{service}"

    def name(self, suffix: str) -> str:
        """Full topic name for a topic suffix (`raw`, `redacted`, ...)."""
        return f"{self.prefix}.{suffix}"

    @property
    def raw(self) -> str:
        return self.name("raw")

    @property
    def redacted(self) -> str:
        return self.name("redacted")

    @property
    def scores(self) -> str:
        return self.name("scores")

    @property
    def alerts(self) -> str:
        return self.name("alerts")

    @property
    def audit(self) -> str:
        return self.name("audit")

    @property
    def alerter_partials(self) -> str:
        """Alerter-internal: partial aggregates keyed by notification group."""
        return self.name("alerter.partials")

    @property
    def alerter_checkpoints(self) -> str:
        """Alerter-internal, compacted: window and alert state per notification group."""
        return self.name("alerter.checkpoints")

    @property
    def alerter_silences(self) -> str:
        """Alerter-internal, compacted: silences by id."""
        return self.name("alerter.silences")

    @staticmethod
    def dlq(topic: str) -> str:
        return f"{topic}.dlq"


COLD_DAYS_FLOOR = 183


class RetentionSettings(Section):
    """One retention policy for every tier (docs/storage.md)."""

    raw_hours: float = Field(default=6, gt=0, description="spanline.raw holds unredacted data: keep it short")
    redacted_days: float = Field(default=7, gt=0, description="spanline.redacted: the replay buffer")
    scores_days: float = Field(default=7, gt=0, description="spanline.scores")
    audit_days: float = Field(default=7, gt=0, description="spanline.audit")
    dlq_days: float = Field(
        default=14, gt=0, description="dead-letter topics (raw's DLQ keeps raw's retention)"
    )
    hot_days: int = Field(default=30, ge=1, description="ClickHouse TTL DELETE window")
    cold_days: int = Field(
        default=COLD_DAYS_FLOOR,
        ge=1,
        description=f"Iceberg retention in whole UTC days; below {COLD_DAYS_FLOOR} needs allow_below_floor",
    )
    allow_below_floor: bool = Field(
        default=False,
        description="accept cold_days below the EU AI Act floor (Art. 19/26: six months); needs a reason",
    )
    below_floor_reason: str = Field(
        default="", description="why this deployment is out of scope of the floor; logged at every start"
    )

    @model_validator(mode="after")
    def _cold_floor(self) -> RetentionSettings:
        """Six months of logs is a legal floor for high-risk AI systems: going below it must be a
        deliberate, explained decision, never a typo."""
        if self.cold_days < COLD_DAYS_FLOOR:
            if not self.allow_below_floor:
                raise ValueError(
                    f"cold_days={self.cold_days} is below the {COLD_DAYS_FLOOR}-day floor (EU AI Act "
                    "Art. 19/26); set allow_below_floor=true with below_floor_reason to override"
                )
            if not self.below_floor_reason.strip():
                raise ValueError("allow_below_floor needs a non-empty below_floor_reason")
        return self


class HttpSettings(Section):
    host: str = Field(default="127.0.0.1", description="bind address of /metrics /healthz /readyz")
    port: int = Field(default=0, ge=0, le=65535, description="0 = the service's default port")


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="log level")
    format: Literal["json", "text"] = Field(default="json", description="json lines (default) or text")

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class SecuritySettings(Section):
    raw_encryption_key: SecretStr | None = Field(
        default=None,
        description="base64 32-byte key: ingest seals spanline.raw values, the redactor opens them",
    )
    raw_decryption_keys: list[SecretStr] = Field(
        default_factory=list, description="older keys the redactor still accepts (rotation)"
    )

    @field_validator("raw_encryption_key")
    @classmethod
    def _valid_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            from spanline.core.envelope import EnvelopeError, parse_key

            try:
                parse_key(value.get_secret_value())
            except EnvelopeError as exc:
                raise ValueError(str(exc)) from None
        return value
