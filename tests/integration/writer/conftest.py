"""chdb fixtures: one engine directory per test module, one database per test.

chdb admits one on-disk engine path per process, and a different path only after every
client on the previous one is closed. An anchor client keeps the module's engine up (so
tests do not pay a restart each) and is closed at module end, so other modules may use
their own path.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from spanline.writer.store import ClickHouseStore, RetryPolicy, connect


@pytest.fixture(scope="module")
def chdb_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("chdb") / "clickhouse"
    dsn = f"chdb://{path}"
    anchor = connect(dsn)
    yield dsn
    anchor.close()


@pytest.fixture
def database() -> str:
    return "t_" + uuid.uuid4().hex[:12]


@pytest.fixture
def store(chdb_dsn: str, database: str) -> Iterator[ClickHouseStore]:
    st = ClickHouseStore(connect(chdb_dsn), database, dsn=chdb_dsn, retry=RetryPolicy(1, 0.01, 0.01))
    st.migrate(hot_days=7)
    yield st
    st.client.command(f"DROP DATABASE IF EXISTS {database}")
    st.close()


def scalar(client: Any, sql: str) -> Any:
    return client.query(sql).result_rows[0][0]
