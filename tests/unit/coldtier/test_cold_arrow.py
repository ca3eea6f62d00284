"""The cold batch's Arrow: sorted and cast column by column, split into partition runs."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from spanline.coldtier.data_files import partition_runs
from spanline.coldtier.tables import SCORES, iceberg_arrow_from_columns, to_iceberg_arrow
from spanline.spans.rows import SCORE_COLUMNS

DAY_NS = 86_400 * 10**9


def _scores(rows: list[tuple[str, int, str]]) -> pa.Table:
    """A span-model scores batch: (project, time in ns, trace id) a row, the rest filled in."""
    n = len(rows)
    values: dict[str, list[object]] = {
        "project_id": [p for p, _, _ in rows],
        "time": [t for _, t, _ in rows],
        "trace_id": [tr for _, _, tr in rows],
        "score_id": [f"s{i}" for i in range(n)],
        "score_value": [float(i) for i in range(n)],
        "sampling_weight": [1.0] * n,
        "ingested_at": [1] * n,
        "attributes": [[("k", str(i))] for i in range(n)],
    }
    return pa.table(
        {
            name: pa.array(values.get(name, [f"{name}-{i}" for i in range(n)]), typ)
            for name, typ in SCORE_COLUMNS
        }
    )


US = 1_000  # the cold tables keep microseconds: rows apart by less sort as a tie
ROWS = [
    ("p2", 3 * DAY_NS + 5 * US, "t1"),
    ("p1", 3 * DAY_NS + 9 * US, "t2"),
    ("p1", 2 * DAY_NS + 1 * US, "t3"),
    ("p2", 3 * DAY_NS + 5 * US, "t0"),
    ("p1", 3 * DAY_NS + 2 * US, "t4"),
]


def test_columns_are_cast_and_sorted_as_one_sort_of_the_cast_table_would() -> None:
    batch = _scores(ROWS)
    expected = pa.Table.from_arrays(
        [batch.column(f.name).cast(f.type, safe=False) for f in SCORES.arrow_schema()],
        schema=SCORES.arrow_schema(),
    ).sort_by([(k, "ascending") for k in SCORES.sort_keys])
    columns = dict(zip(batch.column_names, batch.columns, strict=True))
    out = iceberg_arrow_from_columns(columns, SCORES)
    assert out.equals(expected)
    assert out.column("trace_id").to_pylist() == ["t3", "t4", "t2", "t0", "t1"]
    assert to_iceberg_arrow(batch, SCORES).equals(expected)


def test_each_source_column_is_handed_over() -> None:
    # the dict held the batch's only reference: emptied, every column can be freed as its
    # sorted copy is made instead of the whole batch living until the end
    columns = dict(zip(_scores(ROWS).column_names, _scores(ROWS).columns, strict=True))
    iceberg_arrow_from_columns(columns, SCORES)
    assert columns == {}


def test_a_single_row_and_an_empty_batch() -> None:
    one = _scores(ROWS[:1])
    assert to_iceberg_arrow(one, SCORES).num_rows == 1
    assert to_iceberg_arrow(one.slice(0, 0), SCORES).num_rows == 0


@pytest.fixture(scope="module")
def scores_table(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The real ``scores`` table (its spec: day(time), project_id) in a sqlite catalog."""
    from spanline.coldtier.tables import ensure_tables
    from spanline.settings import load_settings

    _, tables = ensure_tables(load_settings(None, data_dir=str(tmp_path_factory.mktemp("cold"))))
    return tables["scores"]


def _runs(table: pa.Table, iceberg: Any) -> list[tuple[tuple[object, ...], list[str]]]:
    return [
        (tuple(v.value for v in key.field_values), run.column("trace_id").to_pylist())
        for key, run in partition_runs(table, iceberg.spec(), iceberg.schema())
    ]


def test_a_sorted_batch_is_one_run_per_partition(scores_table: Any) -> None:
    runs = _runs(to_iceberg_arrow(_scores(ROWS), SCORES), scores_table)
    # keys as pyiceberg's own split makes them: days since the epoch, the project
    assert runs == [((2, "p1"), ["t3"]), ((3, "p1"), ["t4", "t2"]), ((3, "p2"), ["t0", "t1"])]


def test_runs_are_slices_of_the_batch_not_copies(scores_table: Any) -> None:
    data = to_iceberg_arrow(_scores(ROWS), SCORES)
    source = data.column("explanation").chunk(0).buffers()[2]
    for _, run in partition_runs(data, scores_table.spec(), scores_table.schema()):
        assert run.column("explanation").chunk(0).buffers()[2].address == source.address


def test_an_unsorted_batch_still_splits_where_the_partition_changes(scores_table: Any) -> None:
    # sorted: t3 (p1, day 2), t4, t2 (p1, day 3), t0, t1 (p2, day 3); taken as t2, t3, t4
    runs = _runs(to_iceberg_arrow(_scores(ROWS), SCORES).take([2, 0, 1]), scores_table)
    assert [ids for _, ids in runs] == [["t2"], ["t3"], ["t4"]]
    assert runs[0][0] == runs[2][0] != runs[1][0]


@pytest.mark.parametrize("rows", [0, 1])
def test_tiny_batches(rows: int, scores_table: Any) -> None:
    data = to_iceberg_arrow(_scores(ROWS[:rows]), SCORES)
    runs = list(partition_runs(data, scores_table.spec(), scores_table.schema()))
    assert sum(run.num_rows for _, run in runs) == rows
