"""Settings of the writer service (section `writer`, env `SPANLINE_WRITER_*`).

The DSN and the object store default to locations under the top-level ``data_dir``, which
this section cannot see; :func:`resolve_dsn` and :func:`resolve_object_store_url` finish
the job at runtime so that ``spanline up`` works with no configuration at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from spanline.core.settings import Section

if TYPE_CHECKING:
    from spanline.settings import Settings

_DSN_SCHEMES = ("chdb", "http", "https")


class WriterSettings(Section):
    clickhouse_dsn: SecretStr | None = Field(
        default=None,
        description=(
            "chdb:///abs/path (embedded) or http(s)://user:pass@host:port/db (server). "
            "Unset: chdb:///<data_dir>/clickhouse. Held as a secret because it may carry a password."
        ),
    )
    clickhouse_password: SecretStr | None = Field(
        default=None,
        description="password for an http(s) DSN, when it should not sit inside the DSN itself",
    )
    database: str = Field(default="spanline", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # 40 000: nine in ten messages are scores (one row each), so 10 000 made ~1 400-span
    # inserts, and each small part costs ClickHouse merges; the bytes bound keeps memory flat
    batch_max_rows: int = Field(
        default=40_000,
        ge=4,
        description="flush after about this many rows (a message, one trace piece, counts as 4)",
    )
    # 40 MiB: ~16 000 heavy spans (2.6 KB each). Polls are sized by the bytes the bound still
    # has room for (core/kafka/consumer.py); before, 32 MiB made two-poll batches of ~52 MB.
    # Memory bench, back to back: 40 MiB honoured, peak RSS -55 MB at the same CPU a span; 32
    # MiB honoured, -120 MB for +25% CPU a span and a third less drain rate (more, smaller
    # parts to merge). An insert's working memory in the engine is ~2.6x its Arrow batch.
    batch_max_bytes: int = Field(
        default=40 * 1024 * 1024,
        ge=1024,
        description="flush a table's batch at this many message bytes (a tenth over at most)",
    )
    batch_max_wait_s: float = Field(
        default=1.0, gt=0, le=60, description="flush a non-empty batch this long after its first row"
    )
    span_builder: Literal["auto", "compiled", "python"] = Field(
        default="auto",
        description=(
            "span row builder: compiled (C, ~3x less CPU), python (the reference), "
            "auto = compiled when the extension is built"
        ),
    )
    insert_retries: int = Field(default=5, ge=0, le=100, description="retries of a failed insert")
    insert_backoff_initial_s: float = Field(default=0.2, gt=0)
    insert_backoff_max_s: float = Field(default=10.0, gt=0)
    insert_timeout_s: float = Field(default=60.0, gt=0, description="HTTP send/receive timeout per insert")
    payload_offload_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="payload fields larger than this (UTF-8 bytes) go to the object store (claim check)",
    )
    object_store_url: str | None = Field(
        default=None,
        description="directory path, file:///dir or s3://bucket/prefix. Unset: <data_dir>/objects",
    )
    s3_endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint (MinIO, moto)")
    s3_region: str | None = None
    pricing_file: Path | None = Field(
        default=None, description="JSON or YAML file whose entries extend/override the bundled prices"
    )
    query_host: str = Field(default="127.0.0.1", description="bind address of the read-only query endpoint")
    query_port: int = Field(
        default=8124,
        ge=0,
        le=65535,
        description="local read-only query endpoint served by the process that owns the embedded engine",
    )
    query_max_rows: int = Field(default=100_000, ge=1, description="rows returned by one query at most")
    query_timeout_s: float = Field(default=30.0, gt=0, description="max_execution_time of one query")

    @field_validator("clickhouse_dsn")
    @classmethod
    def _known_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        scheme = urlsplit(value.get_secret_value()).scheme
        if scheme not in _DSN_SCHEMES:
            # never echo the DSN: it may hold a password
            raise ValueError(f"clickhouse_dsn scheme must be one of {', '.join(_DSN_SCHEMES)}")
        return value

    @field_validator("object_store_url")
    @classmethod
    def _known_store(cls, value: str | None) -> str | None:
        if not value:
            return None
        scheme = urlsplit(value).scheme
        if scheme not in ("", "file", "s3"):
            raise ValueError("object_store_url must be a directory, file:///dir or s3://bucket/prefix")
        if scheme == "s3" and not urlsplit(value).netloc:
            raise ValueError("object_store_url s3://bucket/prefix needs a bucket")
        return value

    @model_validator(mode="after")
    def _backoff_order(self) -> WriterSettings:
        if self.insert_backoff_max_s < self.insert_backoff_initial_s:
            raise ValueError("insert_backoff_max_s must be >= insert_backoff_initial_s")
        return self


def resolve_dsn(settings: Settings) -> str:
    """The DSN to connect with: explicit setting, else the embedded engine under ``data_dir``.

    A separate ``clickhouse_password`` is folded into an http(s) DSN that has none, so the
    password can come from a secret-mounted env var while the DSN lives in YAML.
    """
    writer = settings.writer
    if writer.clickhouse_dsn is None:
        return "chdb://" + str((settings.data_dir / "clickhouse").resolve())
    dsn = writer.clickhouse_dsn.get_secret_value()
    parts = urlsplit(dsn)
    if parts.scheme == "chdb":
        if parts.netloc in ("", "memory") or parts.netloc.startswith(":memory:"):
            return dsn
        # chdb://relative/path is a common slip; anchor it like data_dir would be
        return "chdb://" + str(Path(parts.netloc + parts.path).resolve())
    if writer.clickhouse_password is not None and parts.password is None:
        user = parts.username or "default"
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        secret = quote(writer.clickhouse_password.get_secret_value(), safe="")
        netloc = f"{quote(unquote(user), safe='')}:{secret}@{host}{port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return dsn


def dsn_is_embedded(dsn: str) -> bool:
    return dsn.startswith("chdb:")


def chdb_path(dsn: str) -> Path | None:
    """On-disk directory of an embedded DSN; ``None`` for in-memory or server DSNs."""
    if not dsn_is_embedded(dsn):
        return None
    parts = urlsplit(dsn)
    if parts.netloc in ("", "memory") and not parts.path.strip("/"):
        return None
    if parts.netloc == "memory" or parts.netloc.startswith(":memory:"):
        return None
    return Path(parts.netloc + parts.path) if parts.netloc else Path(parts.path)


def redact_dsn(dsn: str) -> str:
    """DSN safe for logs and error messages: the password is replaced."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = f"{parts.username or ''}:********@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def resolve_object_store_url(settings: Settings) -> str:
    """Object store location: explicit setting, else ``<data_dir>/objects`` as an absolute path."""
    url = settings.writer.object_store_url
    if url is None:
        return str((settings.data_dir / "objects").resolve())
    if url.startswith("file://"):
        return str(Path(urlsplit(url).path).resolve())
    if url.startswith("s3://"):
        return url
    return str(Path(url).resolve())
