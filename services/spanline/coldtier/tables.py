"""The cold tier's Iceberg tables: schemas derived from the span model, spec, properties.

Columns are the writer's (``spanline.spans.rows``), so one Arrow batch feeds both tiers.
Iceberg has no unsigned integers and v2 has no nanosecond timestamps, so ``UInt64`` becomes
``long`` and timestamps become UTC microseconds; :func:`to_iceberg_arrow` casts a batch.

Column statistics are switched off for identifiers and free text: a kept manifest would
otherwise still carry an erased user's id as a lower/upper bound (erasure could not be
physical).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from spanline.spans.rows import SCORE_COLUMNS
from spanline.spans.span_build import SPAN_COLUMNS

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from spanline.settings import Settings

OFFSETS_PROPERTY = "spanline.kafka.offsets"
SCHEMA_VERSION = 1

# identifiers and free text: no min/max in manifests (docs/storage.md, erasure)
_NO_STATS = (
    "user_id",
    "conversation_id",
    "agent_id",
    "tool_call_id",
    "status_message",
    "input_messages",
    "output_messages",
    "system_instructions",
    "tool_arguments",
    "tool_result",
    "events",
    "links",
    "explanation",
    "attributes",
    "resource_attributes",
)


@dataclass(frozen=True, slots=True)
class ColdTable:
    """One cold table: its name, the span-model columns, the day column and the sort key."""

    name: str
    columns: Sequence[tuple[str, pa.DataType]]
    time_column: str
    sort_keys: tuple[str, ...]

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(n, _iceberg_type(t)) for n, t in self.columns])

    @property
    def column_names(self) -> list[str]:
        return [n for n, _ in self.columns]


SPANS = ColdTable("spans", SPAN_COLUMNS, "start_time", ("project_id", "start_time", "trace_id", "span_id"))
SCORES = ColdTable("scores", SCORE_COLUMNS, "time", ("project_id", "time", "trace_id", "score_id"))
TABLES: dict[str, ColdTable] = {SPANS.name: SPANS, SCORES.name: SCORES}


def _iceberg_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_unsigned_integer(t):
        return pa.int64()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz="UTC")
    return t


def to_iceberg_arrow(table: pa.Table, cold: ColdTable) -> pa.Table:
    """A span-model batch cast to the cold schema and sorted, since pyiceberg does not apply
    a table's sort order on write and sorted files compress and prune far better."""
    return iceberg_arrow_from_columns(dict(zip(table.column_names, table.columns, strict=True)), cold)


def iceberg_arrow_from_columns(columns: dict[str, pa.ChunkedArray], cold: ColdTable) -> pa.Table:
    """:func:`to_iceberg_arrow` that consumes ``columns`` (name -> column of one batch).

    Each source column leaves the dict as soon as its sorted copy exists, so when the dict
    held the batch's only reference the commit holds the batch once plus one column, not
    twice (``Table.sort_by`` takes every column while the whole source is still alive: a
    32 MiB batch of heavy spans is ~38 MB of Arrow).
    """
    target = cold.arrow_schema()

    def cast(name: str, col: pa.ChunkedArray) -> pa.ChunkedArray:
        want = target.field(name).type
        return col if col.type == want else pc.cast(col, want, safe=False)

    rows = len(next(iter(columns.values()))) if columns else 0
    order = None
    if rows > 1:
        keys = pa.table({k: cast(k, columns[k]) for k in cold.sort_keys})
        order = pc.sort_indices(keys, sort_keys=[(k, "ascending") for k in cold.sort_keys])
        del keys
    out = []
    for field in target:
        col = cast(field.name, columns.pop(field.name))
        out.append(col if order is None else col.take(order))
        del col
    return pa.Table.from_arrays(out, schema=target)


def table_properties(cold: ColdTable) -> dict[str, str]:
    props = {
        "format-version": "2",
        "write.parquet.compression-codec": "zstd",
        "write.parquet.compression-level": "3",
        "write.metadata.delete-after-commit.enabled": "true",
        "write.metadata.previous-versions-max": "10",
        "commit.manifest-merge.enabled": "true",
        "write.metadata.metrics.default": "truncate(16)",
        "spanline.schema-version": str(SCHEMA_VERSION),
        # conflicts are retried by spanline (commit.retry_on_conflict), which re-merges the
        # Kafka offsets from the winner's snapshot; pyiceberg's own retry would re-send ours
        "commit.retry.num-retries": "0",
    }
    for name in cold.column_names:
        if name in _NO_STATS:
            props[f"write.metadata.metrics.column.{name}"] = "none"
    return props


def open_catalog(settings: Settings) -> Catalog:
    from pyiceberg.catalog import load_catalog

    from spanline.coldtier.config import resolve_catalog_properties

    props = resolve_catalog_properties(settings)
    if props["type"] == "sql" and props["uri"].startswith("sqlite:///"):
        from pathlib import Path

        Path(props["uri"][len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    if props["warehouse"].startswith("file://"):
        from pathlib import Path

        Path(props["warehouse"][len("file://") :]).mkdir(parents=True, exist_ok=True)
    return load_catalog(settings.coldtier.catalog_name, **props)


def ensure_table(catalog: Catalog, namespace: str, cold: ColdTable) -> Table:
    """Create the table on first use (idempotent: concurrent creators both end with it)."""
    from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import assign_fresh_schema_ids
    from pyiceberg.transforms import DayTransform, IdentityTransform

    ident = (namespace, cold.name)
    if catalog.table_exists(ident):
        return catalog.load_table(ident)
    try:
        catalog.create_namespace(namespace)
    except NamespaceAlreadyExistsError:
        pass
    schema = assign_fresh_schema_ids(catalog._convert_schema_if_needed(cold.arrow_schema()))
    spec = PartitionSpec(
        PartitionField(
            source_id=schema.find_field(cold.time_column).field_id,
            field_id=1000,
            transform=DayTransform(),
            name=f"{cold.time_column}_day",
        ),
        PartitionField(
            source_id=schema.find_field("project_id").field_id,
            field_id=1001,
            transform=IdentityTransform(),
            name="project_id",
        ),
    )
    try:
        return catalog.create_table(
            ident, schema=schema, partition_spec=spec, properties=table_properties(cold)
        )
    except TableAlreadyExistsError:
        return catalog.load_table(ident)


def ensure_tables(settings: Settings) -> tuple[Catalog, dict[str, Table]]:
    catalog = open_catalog(settings)
    ns = settings.coldtier.namespace
    return catalog, {name: ensure_table(catalog, ns, cold) for name, cold in TABLES.items()}
