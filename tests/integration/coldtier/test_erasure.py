"""Physical erasure across both tiers (chdb + Iceberg on a temp dir, then on moto S3),
verified on the stored files; a replay does not bring the subject back; holds refuse."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from spanline.coldtier.config import s3_properties
from spanline.coldtier.erasure import ErasureRequest, new_request_id
from spanline.coldtier.governance import GovernanceStore, HoldActive, utc_now_iso
from spanline.coldtier.jobs import erase, read_status
from spanline.coldtier.service import ColdStrategy
from spanline.coldtier.storage import list_files, open_fs
from spanline.coldtier.tables import ensure_tables
from spanline.core.kafka.records import InMessage
from spanline.settings import Settings, load_settings
from spanline.spans.pricing import PricingTable
from spanline.spans.rows import SpanRows
from spanline.writer.config import chdb_path, resolve_dsn
from spanline.writer.service import WriteStrategy
from spanline.writer.store import open_store
from tests.integration.coldtier.conftest import MotoServer, erasure_request, s3_coldtier, trace_value

VICTIM = "victim-4711@example.org"


def _messages(settings: Settings) -> list[InMessage]:
    msgs = []
    for i in range(8):
        user = VICTIM if i % 4 == 0 else f"other-{i}"
        value = trace_value(os.urandom(16), 3, user=user, conversation=f"conv-{i}")
        msgs.append(InMessage(settings.topics.redacted, 0, i, b"k", value, [("spanline-project", b"p1")], 0))
    return msgs


def _cold_users(settings: Settings) -> list[str]:
    _, tables = ensure_tables(settings)
    users: list[str] = (
        tables["spans"].scan(selected_fields=("user_id",)).to_arrow().column("user_id").to_pylist()
    )
    return users


def _fill(settings: Settings, msgs: list[InMessage]) -> None:
    _, tables = ensure_tables(settings)
    strategy = ColdStrategy(settings, tables, GovernanceStore.from_settings(settings))
    asyncio.run(strategy.process(msgs[:4]))
    asyncio.run(strategy.process(msgs[4:]))


def _assert_cold_files_clean(settings: Settings) -> int:
    """Our own scan, not the erasure's: every stored file of the cold tables (local or S3),
    raw bytes, and every Parquet file decoded in full (compressed pages hide raw bytes)."""
    _, tables = ensure_tables(settings)
    scanned = 0
    for table in tables.values():
        fs, root = open_fs(table.location(), s3_properties(settings))
        for f in list_files(fs, root):
            scanned += 1
            with fs.open_input_file(f.path) as h:
                assert VICTIM.encode() not in h.read(), f.path
            if f.path.endswith(".parquet"):
                with fs.open_input_file(f.path) as h:
                    assert VICTIM not in str(pq.read_table(h).to_pylist()), f.path
    return scanned


def _settings(tmp_path: Path, **cold: Any) -> Settings:
    return load_settings(None, data_dir=str(tmp_path), coldtier={"erasure_poll_s": 0.1, **cold})


def test_erase_offline_both_tiers_and_replay(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    msgs = _messages(s)
    _fill(s, msgs)
    store = open_store(s)
    try:
        rows = SpanRows(PricingTable.load(None), None)
        for m in msgs:
            rows.add_bytes(m.value, "p1", 1)
        store.insert("spans", rows.take())
        store.client.command(f"OPTIMIZE TABLE {store.database}.spans FINAL")
        gov = GovernanceStore.from_settings(s)
        gov.set_hold("p1", "litigation", None, "legal")
        with pytest.raises(HoldActive, match="p1"):
            erase(s, erasure_request(gov, VICTIM, ["p1"]))
        gov.release_hold("p1", "legal", "closed")

        assert _cold_users(s).count(VICTIM) == 6
        status = erase(s, erasure_request(gov, VICTIM))
        assert status["state"] == "verified", status
        assert status["cold"]["rows"]["spans"] == 6
        assert status["hot"]["rows"]["spans"] == 6
        assert status["hot"]["outdated_parts_left"] == 0
        stored = read_status(s, status["request_id"])
        assert stored is not None and stored["state"] == "verified"
        users = _cold_users(s)
        assert VICTIM not in users and len(users) == 18
        hot = store.client.query(
            f"SELECT countIf(user_id = '{VICTIM}'), count() FROM {store.database}.spans"
        ).result_rows
        assert hot[0] == (0, 18)

        # replay of the topic: neither tier takes the subject back. The cold tier skips
        # offsets its snapshot holds, so the replay comes at new offsets (a re-produced
        # topic): the others' spans are stored again, the subject's are not.
        _fill(s, [dataclasses.replace(m, offset=m.offset + len(msgs)) for m in msgs])
        users = _cold_users(s)
        assert VICTIM not in users and len(users) == 36
        strategy = WriteStrategy(s, store, None)  # type: ignore[arg-type]
        asyncio.run(strategy.process(msgs))
        hot = store.client.query(
            f"SELECT countIf(user_id = '{VICTIM}') FROM {store.database}.spans"
        ).result_rows
        assert hot[0][0] == 0
    finally:
        store.close()
    # no stored file of either tier holds the subject (cold decoded; hot parts and mutation
    # files raw: the mutation names a Memory table, not the subject)
    assert _assert_cold_files_clean(s) > 0
    hot_dir = chdb_path(resolve_dsn(s))
    assert hot_dir is not None
    hot_files = [p for p in hot_dir.rglob("*") if p.is_file()]
    assert hot_files and not [p for p in hot_files if VICTIM.encode() in p.read_bytes()]
    audit = [r for r in GovernanceStore.from_settings(s).audit_records() if r["event"] == "erasure"]
    assert len(audit) == 1 and VICTIM not in str(audit)


def test_erase_cold_on_moto_s3(tmp_path: Path, moto: MotoServer) -> None:
    s = _settings(tmp_path, **s3_coldtier(moto, os.urandom(4).hex()))
    msgs = _messages(s)
    _fill(s, msgs)
    gov = GovernanceStore.from_settings(s)
    status = erase(s, erasure_request(gov, VICTIM))
    assert status["state"] == "verified", status
    assert status["cold"]["verify"]["files_scanned"] > 0
    assert VICTIM not in _cold_users(s)
    assert _assert_cold_files_clean(s) > 0
    _fill(s, msgs)  # replay of the topic into the S3 table
    assert VICTIM not in _cold_users(s)
    assert _assert_cold_files_clean(s) > 0


def test_erase_takes_the_raw_subject_and_removes_rows_stored_under_its_pseudonym(tmp_path: Path) -> None:
    """With a pseudonym secret the redactor stores user.id as <ID:...>; erase gets the raw id."""
    from spanline.coldtier.subjects import stored_forms
    from spanline.redactor.pseudonym import pseudonymize_identifier

    s = load_settings(
        None,
        data_dir=str(tmp_path),
        coldtier={"erasure_poll_s": 0.1},
        redactor={"pseudonym_secret": "s3cret"},
    )
    stored = pseudonymize_identifier("p1", VICTIM, "s3cret")
    msgs = []
    for i in range(4):
        user = stored if i % 2 == 0 else f"other-{i}"
        value = trace_value(os.urandom(16), 3, user=user, conversation=f"conv-{i}")
        msgs.append(InMessage(s.topics.redacted, 0, i, b"k", value, [("spanline-project", b"p1")], 0))
    _fill(s, msgs)
    assert _cold_users(s).count(stored) == 6
    gov = GovernanceStore.from_settings(s)
    req = ErasureRequest(
        request_id=new_request_id(),
        kind="user_id",
        forms=stored_forms(s, "user_id", VICTIM, ["p1"]),
        subject_hmac=gov.digest("user_id", VICTIM),
        requester="dpo@example.org",
        projects=None,
        created_at=utc_now_iso(),
    )
    status = erase(s, req)
    assert status["state"] == "verified", status
    assert status["cold"]["rows"]["spans"] == 6
    users = _cold_users(s)
    assert stored not in users and len(users) == 6
    _fill(s, msgs)  # replayed pseudonymized rows stay out too
    assert stored not in _cold_users(s)
