"""Writing one batch's Parquet data files, a partition at a time, from slices of the batch.

``Table.append`` (pyiceberg 0.12) splits a partitioned batch with ``Table.filter`` once per
partition and combines the chunks: a full copy of the batch next to the batch itself, and
``ThreadPoolExecutor.map`` builds every partition's copy before the first file is written.
A cold batch is sorted by project and time (``tables.to_iceberg_arrow``), so each
(day, project) partition is a run of rows already: :func:`append_runs` hands pyiceberg's
file writer zero-copy slices of those runs instead. Files, statistics, partition values and
the snapshot (fast or merge append as the table's ``commit.manifest-merge.enabled`` says)
are pyiceberg's own; only the split differs. An unsorted batch stays correct: a partition
that comes back in a later run gets a file of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from pyiceberg.partitioning import PartitionKey, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table


def partition_runs(
    data: pa.Table, spec: PartitionSpec, schema: Schema
) -> Iterator[tuple[PartitionKey, pa.Table]]:
    """(partition key, zero-copy slice) for each run of rows with the same partition values.

    The values are computed with the partition transforms' Arrow kernels, as pyiceberg's own
    split does, so the keys (and the file paths and manifests made from them) are the same.
    """
    from pyiceberg.partitioning import PartitionFieldValue, PartitionKey

    if data.num_rows == 0:
        return
    values: list[pa.ChunkedArray] = []
    for field in spec.fields:
        name = schema.find_column_name(field.source_id)
        if name is None:
            raise ValueError(f"no column for partition source field {field.source_id}")
        source = schema.find_field(field.source_id)
        values.append(field.transform.pyarrow_transform(source.field_type)(data.column(name)))
    starts = [0]
    if data.num_rows > 1 and values:
        changed: pa.ChunkedArray | pa.Array | None = None
        for col in values:
            # a null on either side counts as a change: a null partition gets its own run
            step = pc.fill_null(pc.not_equal(col.slice(1), col.slice(0, len(col) - 1)), True)
            changed = step if changed is None else pc.or_(changed, step)
        starts += [i + 1 for i in pc.indices_nonzero(changed).to_pylist()]
    ends = [*starts[1:], data.num_rows]
    for start, end in zip(starts, ends, strict=True):
        key = PartitionKey(
            field_values=[
                PartitionFieldValue(field=field, value=col[start].as_py())
                for field, col in zip(spec.fields, values, strict=True)
            ],
            partition_spec=spec,
            schema=schema,
        )
        yield key, data.slice(start, end - start)


def append_runs(table: Table, data: pa.Table, snapshot_properties: Mapping[str, str]) -> None:
    """``table.append(data, snapshot_properties)`` without copying ``data`` per partition."""
    from pyiceberg.io.pyarrow import (
        _check_pyarrow_schema_compatible,
        bin_pack_arrow_table,
        pyarrow_to_schema,
        write_file,
    )
    from pyiceberg.table import TableProperties, WriteTask
    from pyiceberg.utils.properties import property_as_bool, property_as_int

    with table.transaction() as tx:
        meta = tx.table_metadata
        schema = meta.schema()
        _check_pyarrow_schema_compatible(
            schema, provided_schema=data.schema, format_version=meta.format_version
        )
        task_schema = pyarrow_to_schema(
            data.schema, name_mapping=schema.name_mapping, format_version=meta.format_version
        )
        target_size = (
            property_as_int(
                meta.properties,
                TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
                TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
            )
            or TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT
        )
        merge = property_as_bool(
            meta.properties,
            TableProperties.MANIFEST_MERGE_ENABLED,
            TableProperties.MANIFEST_MERGE_ENABLED_DEFAULT,
        )
        spec = meta.spec()
        runs: Iterable[tuple[PartitionKey | None, pa.Table]] = (
            [(None, data)] if spec.is_unpartitioned() else partition_runs(data, spec, schema)
        )
        update = tx.update_snapshot(snapshot_properties=dict(snapshot_properties))
        with update.merge_append() if merge else update.fast_append() as append_files:
            counter = itertools.count()
            tasks = (
                WriteTask(
                    write_uuid=append_files.commit_uuid,
                    task_id=next(counter),
                    schema=task_schema,
                    record_batches=batches,
                    partition_key=key,
                )
                for key, run in runs
                for batches in bin_pack_arrow_table(run, target_size)
            )
            for data_file in write_file(table.io, meta, tasks):
                append_files.append_data_file(data_file)
