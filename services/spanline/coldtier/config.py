"""Settings of the coldtier service (section `coldtier`, env `SPANLINE_COLDTIER_*`).

Locations default to ``<data_dir>/iceberg`` and ``<data_dir>/governance``, which this
section cannot see; :func:`resolve_catalog_properties` and :func:`resolve_governance_url`
finish the job at runtime so ``spanline up`` needs no configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, model_validator

from spanline.core.settings import Section

if TYPE_CHECKING:
    from spanline.settings import Settings


class ColdtierSettings(Section):
    catalog_type: Literal["sql", "rest", "glue"] = Field(
        default="sql", description="Iceberg catalog kind: sql (sqlite locally), rest or glue"
    )
    catalog_uri: str | None = Field(
        default=None,
        description="SQL catalog URI or REST endpoint. Unset: sqlite:///<data_dir>/iceberg/catalog.db",
    )
    catalog_name: str = Field(default="spanline", description="catalog name (SQL catalog row key)")
    warehouse: str | None = Field(
        default=None, description="s3://bucket/prefix or a directory. Unset: <data_dir>/iceberg/warehouse"
    )
    namespace: str = Field(default="spanline", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    s3_endpoint: str | None = Field(default=None, description="S3-compatible endpoint (MinIO, moto)")
    s3_region: str | None = Field(default=None, description="S3 region")
    s3_access_key_id: SecretStr | None = Field(default=None, description="S3 access key (secret)")
    s3_secret_access_key: SecretStr | None = Field(default=None, description="S3 secret key (secret)")
    s3_path_style: bool = Field(default=False, description="path-style S3 URLs (MinIO, moto)")
    # 50 000: nine in ten messages are scores of a few hundred bytes; at 5 000 a commit held
    # ~2 500 spans and the Iceberg commits' metadata work was a third of the coldtier's CPU.
    # batch_max_bytes bounds the memory.
    batch_max_messages: int = Field(
        default=50_000,
        ge=1,
        description="Kafka messages per Iceberg commit at most (a message holds one trace piece)",
    )
    # 24 MiB: one poll of kafka.max_poll_records (2 000) heavy-span messages (~13 KB each,
    # ~26 MB, ~10 000 spans a commit). Polls are sized by the bytes the bound still has room
    # for (core/kafka/consumer.py), so a batch is this size, not whatever the polls held: 16
    # MiB used to make these same 26 MB batches; honoured, it made 17 MB batches, ~15% more
    # CPU a span and a quarter less drain rate for ~50 MB less peak RSS (memory bench).
    batch_max_bytes: int = Field(
        default=24 * 1024 * 1024,
        ge=1024,
        description="message bytes per Iceberg commit, a tenth over at most (a batch takes ~5x its message "
        "bytes in memory)",
    )
    batch_max_wait_s: float = Field(
        default=30.0, gt=0, le=3600, description="commit a non-empty batch this long after its first message"
    )
    # The end of a burst: without it a big batch waits for batch_max_wait_s although no more
    # is coming (the cold tier lagged the hot one by ~30 s after every load test).
    batch_idle_s: float = Field(
        default=1.0,
        ge=0,
        le=3600,
        description="commit a batch of batch_idle_min_messages or batch_idle_min_bytes or more once idle "
        "this long (0: off)",
    )
    batch_idle_min_messages: int = Field(
        default=5_000,
        ge=1,
        description="smallest batch committed early on idle, in messages (smaller ones wait: no tiny files)",
    )
    # A trace is two messages (its spans, its score set) of very different sizes: bytes say
    # "not a tiny file" whatever the mix.
    batch_idle_min_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=0,
        description="smallest batch committed early on idle, in message bytes (0: messages only)",
    )
    # 1: a second batch in flight holds its messages and rows while the first commits, ~35 MB
    # more peak RSS under a backlog (352-358 against 316-323 MB, memory bench) for a 12-20%
    # faster drain of a full topic at 7-10% more CPU a span; the drain rate with one is still
    # past what the pipeline feeds it, the memory target (< 300 MB) is not
    batches_in_flight: int = Field(
        default=1,
        ge=1,
        le=4,
        description="batches processed at once; 2 builds the next while one commits (commits stay in order): "
        "a faster drain for ~35 MB more memory",
    )
    commit_retries: int = Field(default=10, ge=0, le=1000, description="retries of a conflicting commit")
    maintenance_interval_s: float = Field(
        default=3600.0, ge=0, description="run maintenance this often between batches; 0 = never in-process"
    )
    compact_min_files: int = Field(
        default=5, ge=2, description="compact a (day, project) partition holding at least this many files"
    )
    compact_max_file_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="files at least this large count as compacted"
    )
    snapshot_keep_s: float = Field(
        default=86_400.0, ge=0, description="snapshots older than this are expired (time travel window)"
    )
    orphan_min_age_s: float = Field(
        default=3_600.0,
        ge=0,
        description="unreferenced files younger than this are kept (a writer may not have committed yet)",
    )
    governance_url: str | None = Field(
        default=None,
        description="directory or s3://bucket/prefix for legal holds, the erasure ledger and audit records. "
        "Unset: <data_dir>/governance",
    )
    erasure_key: SecretStr | None = Field(
        default=None,
        description="HMAC key for subject digests in the erasure ledger. Unset: a key file in the "
        "governance store, created on first use",
    )
    erasure_poll_s: float = Field(
        default=2.0, gt=0, le=300, description="how often a running writer/coldtier looks for erasure jobs"
    )

    @model_validator(mode="after")
    def _s3_keys_pair(self) -> ColdtierSettings:
        if (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            raise ValueError("s3_access_key_id and s3_secret_access_key go together")
        return self


def _local_root(settings: Settings) -> Path:
    return (settings.data_dir / "iceberg").resolve()


def resolve_warehouse(settings: Settings) -> str:
    c = settings.coldtier
    if c.warehouse is None:
        return "file://" + str(_local_root(settings) / "warehouse")
    if c.warehouse.startswith(("s3://", "s3a://", "file://")):
        return c.warehouse
    return "file://" + str(Path(c.warehouse).resolve())


def resolve_catalog_properties(settings: Settings) -> dict[str, str]:
    """pyiceberg catalog properties; secrets included, so never log the result."""
    c = settings.coldtier
    props: dict[str, str] = {"type": c.catalog_type, "warehouse": resolve_warehouse(settings)}
    if c.catalog_type == "sql":
        uri = c.catalog_uri or "sqlite:///" + str(_local_root(settings) / "catalog.db")
        props["uri"] = uri
        props["init_catalog_tables"] = "true"
    elif c.catalog_uri:
        props["uri"] = c.catalog_uri
    props.update(s3_properties(settings))
    return props


def s3_properties(settings: Settings) -> dict[str, str]:
    c = settings.coldtier
    props: dict[str, str] = {}
    if c.s3_endpoint:
        props["s3.endpoint"] = c.s3_endpoint
    if c.s3_region:
        props["s3.region"] = c.s3_region
    if c.s3_access_key_id is not None and c.s3_secret_access_key is not None:
        props["s3.access-key-id"] = c.s3_access_key_id.get_secret_value()
        props["s3.secret-access-key"] = c.s3_secret_access_key.get_secret_value()
    if c.s3_path_style:
        props["s3.path-style-access"] = "true"
    return props


def resolve_governance_url(settings: Settings) -> str:
    url = settings.coldtier.governance_url
    if url is None:
        return str((settings.data_dir / "governance").resolve())
    if url.startswith("s3://"):
        return url
    if url.startswith("file://"):
        return str(Path(url[len("file://") :]).resolve())
    return str(Path(url).resolve())
