"""The embedded engine runs with the bounds the writer passes it, tables old and new alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from spanline.writer.store import (
    ENGINE_MERGE_TREE_DEFAULTS,
    ENGINE_SETTINGS,
    ClickHouseStore,
    engine_defaults_missing,
)
from tests.integration.writer.conftest import scalar

pytestmark = pytest.mark.integration

GRANULE_BYTES = 2 << 20


def test_cache_and_memory_bounds_reach_the_engine(store: ClickHouseStore) -> None:
    rows = store.client.query(
        "SELECT name, value FROM system.server_settings WHERE name IN %(names)s",
        parameters={"names": list(ENGINE_SETTINGS)},
    ).result_rows
    assert {name: int(value) for name, value in rows} == ENGINE_SETTINGS


def test_mergetree_tables_take_the_engine_granule_bound(store: ClickHouseStore) -> None:
    """The bound is a default of the engine, not of a table: tables created by earlier
    versions (the hot tables of migration 1 name no granule size) get it as well."""
    client, db = store.client, store.database
    assert ENGINE_MERGE_TREE_DEFAULTS == {"index_granularity_bytes": str(GRANULE_BYTES)}
    assert engine_defaults_missing(client) == []
    create = scalar(client, f"SHOW CREATE TABLE {db}.spans")
    assert "index_granularity_bytes" not in create
    # ~12 MB of 3 KB rows: ClickHouse's own 10 MiB granules hold it in two, 2 MiB ones in six
    marks = {}
    own = " SETTINGS index_granularity_bytes = 10485760"
    for table, settings in (("bounded", ""), ("clickhouse_default", own)):
        client.command(
            f"CREATE TABLE {db}.{table} (k UInt32, v String) ENGINE = MergeTree ORDER BY k{settings}"
        )
        client.command(f"INSERT INTO {db}.{table} SELECT number, repeat('x', 3000) FROM numbers(4000)")
        marks[table] = scalar(
            client, f"SELECT sum(marks) FROM system.parts WHERE database = '{db}' AND table = '{table}'"
        )
    assert marks["clickhouse_default"] <= 3
    assert marks["bounded"] >= 6


_WITHOUT_CONFIG = """
import logging, shutil, sys
from pathlib import Path
import spanline.writer.store as store
from spanline.settings import load_settings

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s %(settings)s")
odd = Path(sys.argv[1]) / "a&b"
odd.mkdir()
store.ENGINE_OPTIONS["config-file"] = str(shutil.copy(store.ENGINE_CONFIG_FILE, odd))
opened = store.open_store(load_settings(None, data_dir=sys.argv[1]))
print("missing:", store.engine_defaults_missing(opened.client))
"""


def test_an_engine_without_its_config_file_is_reported(tmp_path: Path) -> None:
    """chdb loses a '&' of the config file's path in its connection string (even encoded) and
    starts without the file: the writer says so at start instead of running unbounded."""
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_CONFIG, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "missing: ['index_granularity_bytes']" in done.stdout
    assert "WARNING embedded engine runs without its configuration file" in done.stderr
    assert "index_granularity_bytes" in done.stderr
