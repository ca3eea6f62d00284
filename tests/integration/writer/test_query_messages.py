"""What `spanline query` tells a person: cut results, empty results, engine errors (chdb)."""

from __future__ import annotations

import json

import pytest

from spanline.query.client import DirectBackend, HttpBackend, QueryError
from spanline.query.endpoint import QueryEndpoint
from spanline.query.readonly import run_readonly
from spanline.writer.store import ClickHouseStore, connect

pytestmark = pytest.mark.integration


@pytest.fixture
def endpoint(store: ClickHouseStore, chdb_dsn: str):  # type: ignore[no-untyped-def]
    ep = QueryEndpoint(connect(chdb_dsn, readonly=True, database=store.database), store.database, port=0)
    ep.start()
    yield ep
    ep.stop()


@pytest.mark.parametrize(("n", "cut"), [(10, False), (11, True), (65_537, True), (200_000, True)])
def test_truncation_is_flagged_exactly_when_rows_were_dropped(chdb_dsn: str, n: int, cut: bool) -> None:
    client = connect(chdb_dsn, readonly=True)
    cap = 10 if n < 100 else 65_536
    result = run_readonly(client, f"SELECT number FROM numbers({n})", max_rows=cap)
    assert len(result.rows) == min(n, cap)
    assert result.truncated is cut


def test_empty_result_keeps_its_columns(store: ClickHouseStore, chdb_dsn: str) -> None:
    client = connect(chdb_dsn, readonly=True, database=store.database)
    result = run_readonly(
        client, "SELECT trace_id, name, count() AS n FROM spans WHERE 0 GROUP BY trace_id, name"
    )
    assert result.rows == []
    assert result.columns == ["trace_id", "name", "n"]
    assert result.types[2] == "UInt64"


@pytest.mark.parametrize(
    ("sql", "wanted"),
    [
        ("SELECT 1 1 1", "syntax error: at position 10: '1 1'"),
        ("SELECT count( FROM spans", "syntax error"),
        ("SELECT 1 +", "syntax error: the statement ends too early"),
        ("SELECT name FROM spans WHERE name = 'x", "not closed"),
        ("SELECT nosuchcolumn FROM spans", "nosuchcolumn"),
        ("SELEC * FROM spans", "syntax error: 'SELEC' does not start a statement; did you mean SELECT?"),
    ],
)
def test_engine_errors_name_the_problem_without_internal_settings(
    store: ClickHouseStore, chdb_dsn: str, endpoint: QueryEndpoint, sql: str, wanted: str
) -> None:
    backends = [
        DirectBackend(
            connect(chdb_dsn, readonly=True, database=store.database),
            store.database,
            max_rows=10,
            timeout_s=5,
        ),
        HttpBackend(endpoint.url, store.database, timeout_s=5),
    ]
    for backend in backends:
        with pytest.raises(QueryError) as err:
            backend.query(sql)
        text = str(err.value)
        assert wanted in text, (type(backend).__name__, text)
        for internal in ("max_result_rows", "result_overflow_mode", "FORMAT Native", "Code:", "read-only"):
            assert internal not in text, (type(backend).__name__, text)


def test_truncated_travels_through_the_endpoint(endpoint: QueryEndpoint, store: ClickHouseStore) -> None:
    endpoint.max_rows = 5
    result = HttpBackend(endpoint.url, store.database, timeout_s=5).query("SELECT number FROM numbers(6)")
    assert result.truncated and len(result.rows) == 5
    assert json.loads(json.dumps(result.to_json()))["truncated"] is True
