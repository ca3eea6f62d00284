"""A legal hold suspends the hot tier's retention deletes for its project (chdb): the TTL
gets ``WHERE project_id NOT IN (held)`` by ``MODIFY TTL`` (metadata only), applied by the
hot store's owner on `spanline hold set|release` (offline: the CLI; under a running writer:
its job loop) and at the writer's start."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from spanline.cli.main import main
from spanline.coldtier.governance import GovernanceStore
from spanline.core.broker import free_port
from spanline.settings import Settings, load_settings
from spanline.spans.pricing import PricingTable
from spanline.spans.rows import SpanRows
from spanline.writer.migrate import HOT_TABLES, RETAINED_TABLES, current_ttl
from spanline.writer.service import _sync_holds
from spanline.writer.store import ClickHouseStore, open_store
from tests.integration.coldtier.conftest import trace_value
from tests.integration.coldtier.running_writer import running_writer

DAY_NS = 86_400 * 10**9


def _settings(tmp_path: Path, hot_days: int, **writer: Any) -> Settings:
    return load_settings(
        None,
        data_dir=str(tmp_path),
        retention={"hot_days": hot_days},
        coldtier={"erasure_poll_s": 0.1},
        writer=writer,
    )


def _insert(store: ClickHouseStore, days_ago: int, projects: tuple[str, ...] = ("held", "other")) -> None:
    rows = SpanRows(PricingTable.load(None), None)
    t0 = time.time_ns() - days_ago * DAY_NS
    for project in projects:
        rows.add_bytes(trace_value(os.urandom(16), 2, t0=t0), project, t0)
    store.insert("spans", rows.take())


def _old_rows(store: ClickHouseStore) -> dict[str, int]:
    rows = store.client.query(
        f"SELECT project_id, count() FROM {store.database}.spans "
        "WHERE start_time < now64() - INTERVAL 30 DAY GROUP BY project_id ORDER BY project_id"
    ).result_rows
    return dict(rows)


def _recent_rows(store: ClickHouseStore) -> int:
    return int(
        store.client.query(
            f"SELECT count() FROM {store.database}.spans WHERE start_time >= now64() - INTERVAL 30 DAY"
        ).result_rows[0][0]
    )


def _holds_in_ttl(store: ClickHouseStore) -> dict[str, tuple[int | None, frozenset[str]]]:
    with store._insert_lock:  # the owner's job loop uses the same client between inserts
        return {t: current_ttl(store.client, store.database, t) for t in (*HOT_TABLES, *RETAINED_TABLES)}


def test_held_project_survives_forced_ttl_merges_and_release_restores_deletion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SPANLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SPANLINE_WRITER_QUERY_PORT", str(free_port()))  # nothing listens: offline
    store = open_store(_settings(tmp_path, 60))
    _insert(store, 40)  # inside the 60-day window when written
    _insert(store, 0)
    store.close()

    # offline: the CLI applies the hold to the hot store itself
    assert main(["hold", "set", "held", "--reason", "case 12/7", "--by", "legal"]) == 0
    assert "retention deletes skip projects on hold (held)" in capsys.readouterr().out

    # the window shrinks to 30 days at the next start: the hold exclusion is kept
    store = open_store(_settings(tmp_path, 30))
    try:
        ttl = _holds_in_ttl(store)
        assert {t: v[1] for t, v in ttl.items()} == dict.fromkeys(ttl, frozenset({"held"}))
        assert ttl["spans"][0] == 30 and ttl["alerts"][0] == 183
        assert _old_rows(store) == {"held": 2, "other": 2}
        store.client.command(f"OPTIMIZE TABLE {store.database}.spans FINAL")
        assert _old_rows(store) == {"held": 2}  # the other project's expired rows are gone
        assert _recent_rows(store) == 4
        _insert(store, 35)  # an expired insert: TTL at insert keeps only the held project's
        store.client.command(
            f"ALTER TABLE {store.database}.spans MATERIALIZE TTL", settings={"mutations_sync": 2}
        )
        store.client.command(f"OPTIMIZE TABLE {store.database}.spans FINAL")
        assert _old_rows(store) == {"held": 4}
    finally:
        store.close()

    assert main(["hold", "release", "held", "--reason", "case closed", "--by", "legal"]) == 0
    assert "retention deletes skip projects on hold (none)" in capsys.readouterr().out
    store = open_store(_settings(tmp_path, 30))
    try:
        assert {v[1] for v in _holds_in_ttl(store).values()} == {frozenset()}
        store.client.command(f"OPTIMIZE TABLE {store.database}.spans FINAL")
        assert _old_rows(store) == {}
        assert _recent_rows(store) == 4
    finally:
        store.close()


def test_running_writer_applies_holds_from_the_cli_and_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    s = _settings(tmp_path, 30, query_port=port)
    monkeypatch.setenv("SPANLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SPANLINE_WRITER_QUERY_PORT", str(port))
    gov = GovernanceStore.from_settings(s)
    gov.set_hold("early", "set while the writer was down", None, "legal")
    store = open_store(s)
    _sync_holds(s, store)  # what WriterService.start does before its first insert
    assert {v[1] for v in _holds_in_ttl(store).values()} == {frozenset({"early"})}

    # the writer's own job loop, with its query endpoint up: the CLI must not open the
    # engine, it hands the work to the owner
    def no_second_opener(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("spanline hold must not open the hot store the writer owns")

    with running_writer(s, store):
        monkeypatch.setattr("spanline.writer.store.connect", no_second_opener)
        assert main(["hold", "set", "p-2", "--reason", "regulator", "--by", "legal"]) == 0
        assert "(early, p-2)" in capsys.readouterr().out
        assert {v[1] for v in _holds_in_ttl(store).values()} == {frozenset({"early", "p-2"})}
        assert main(["hold", "release", "early", "--reason", "done", "--by", "legal"]) == 0
        assert {v[1] for v in _holds_in_ttl(store).values()} == {frozenset({"p-2"})}

        # an expired hold stops protecting the project at the owner's next poll
        gov.set_hold("p-2", "regulator", "2000-01-01T00:00:00+00:00", "legal")
        deadline = time.monotonic() + 10
        while {v[1] for v in _holds_in_ttl(store).values()} != {frozenset()} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert {v[1] for v in _holds_in_ttl(store).values()} == {frozenset()}


def test_hold_on_a_data_dir_without_hot_store_creates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SPANLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SPANLINE_WRITER_QUERY_PORT", str(free_port()))
    assert main(["hold", "set", "p1", "--reason", "case", "--by", "legal"]) == 0
    assert "(p1); no hot store" in capsys.readouterr().out
    assert not (tmp_path / "clickhouse").exists()
    store = open_store(_settings(tmp_path, 30))  # the writer's first start applies it
    try:
        _sync_holds(_settings(tmp_path, 30), store)
        assert {v[1] for v in _holds_in_ttl(store).values()} == {frozenset({"p1"})}
    finally:
        store.close()
