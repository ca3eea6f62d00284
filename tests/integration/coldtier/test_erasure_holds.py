"""An erasure without --project skips projects on legal hold, and its ledger entry must
skip them too: a held project's replayed records stay, in both tiers (chdb + Iceberg)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path

import pyarrow.compute as pc

from spanline.coldtier.governance import GovernanceStore
from spanline.coldtier.jobs import erase
from spanline.coldtier.ledger_filter import drop_erased
from spanline.coldtier.service import ColdStrategy
from spanline.coldtier.tables import ensure_tables
from spanline.core.kafka.records import InMessage
from spanline.settings import Settings, load_settings
from spanline.spans.pricing import PricingTable
from spanline.spans.rows import SpanRows
from spanline.writer.service import WriteStrategy
from spanline.writer.store import open_store
from tests.integration.coldtier.conftest import erasure_request, trace_value

VICTIM = "victim-held@example.org"
HELD = "held-proj"


def _messages(settings: Settings) -> list[InMessage]:
    """One victim trace and one other trace (3 spans each) in p1 and in the held project."""
    msgs = []
    for i, (project, user) in enumerate(
        [("p1", VICTIM), ("p1", "other-1"), (HELD, VICTIM), (HELD, "other-2")]
    ):
        value = trace_value(os.urandom(16), 3, user=user, conversation=f"conv-{i}")
        msgs.append(
            InMessage(settings.topics.redacted, 0, i, b"k", value, [("spanline-project", project.encode())])
        )
    return msgs


def _cold_victims(settings: Settings) -> dict[str, int]:
    _, tables = ensure_tables(settings)
    spans = tables["spans"]
    spans.refresh()
    data = spans.scan(selected_fields=("project_id", "user_id")).to_arrow()
    rows = data.filter(pc.equal(data.column("user_id"), VICTIM)).column("project_id").to_pylist()
    return {p: rows.count(p) for p in sorted(set(rows))}


def _cold_fill(settings: Settings, msgs: list[InMessage]) -> None:
    _, tables = ensure_tables(settings)
    asyncio.run(ColdStrategy(settings, tables, GovernanceStore.from_settings(settings)).process(msgs))


def test_erase_without_project_leaves_held_projects_records_replayable(tmp_path: Path) -> None:
    s = load_settings(None, data_dir=str(tmp_path), coldtier={"erasure_poll_s": 0.1})
    msgs = _messages(s)
    _cold_fill(s, msgs)
    store = open_store(s)
    try:
        rows = SpanRows(PricingTable.load(None), None)
        for m in msgs:
            rows.add_bytes(m.value, dict(m.headers)["spanline-project"].decode(), 1)
        store.insert("spans", rows.take())
        gov = GovernanceStore.from_settings(s)
        gov.set_hold(HELD, "litigation 12/7", None, "legal")

        status = erase(s, erasure_request(gov, VICTIM))
        assert status["state"] == "verified", status
        assert status["skipped_projects_on_hold"] == [HELD]
        # verification checked every file except the held project's, which keep the subject
        assert status["cold"]["verify"]["files_out_of_scope"] >= 1
        assert status["hot"]["verify"]["parts_out_of_scope"] >= 1
        assert status["hot"]["verify"]["files_with_subject"] == 0
        assert _cold_victims(s) == {HELD: 3}
        hot = store.client.query(
            f"SELECT project_id, count() FROM {store.database}.spans "
            f"WHERE user_id = '{VICTIM}' GROUP BY project_id"
        ).result_rows
        assert hot == [(HELD, 3)]

        # the ledger entry names the erasure's scope; no entry covers every project
        digest = gov.digest("user_id", VICTIM)
        ledger = gov.ledger()
        assert digest in ledger["user_id"]
        (scope,) = ledger["user_id"].scopes[digest]
        assert scope.covers("p1") and scope.covers("a-project-made-later") and not scope.covers(HELD)
        assert ledger["trace_id"] and all(d in ledger["trace_id"].scopes for d in ledger["trace_id"])

        # cold replay (a re-produced topic: new offsets): the held project's victim spans are
        # stored again, p1's are not
        _cold_fill(s, [dataclasses.replace(m, offset=m.offset + len(msgs)) for m in msgs])
        assert _cold_victims(s) == {HELD: 6}

        # hot replay through the writer's processing step: nothing of the held project is
        # dropped, the erased p1 rows are
        strategy = WriteStrategy(s, store, None)  # type: ignore[arg-type]
        built = SpanRows(PricingTable.load(None), None)
        for m in msgs:
            built.add_bytes(m.value, dict(m.headers)["spanline-project"].decode(), 2)
        table = built.take()
        kept, dropped = drop_erased(table, strategy.ledger.sets(), gov.digest)
        assert dropped == 3
        victims = kept.filter(pc.equal(kept.column("user_id"), VICTIM)).column("project_id").to_pylist()
        assert victims == [HELD] * 3
        asyncio.run(strategy.process(msgs))
        hot = store.client.query(
            f"SELECT project_id, count() FROM {store.database}.spans FINAL "
            f"WHERE user_id = '{VICTIM}' GROUP BY project_id"
        ).result_rows
        assert hot == [(HELD, 3)]

        # releasing the hold does not widen the old erasure: the held records stay kept
        gov.release_hold(HELD, "legal", "case closed")
        kept, dropped = drop_erased(table, gov.ledger(), gov.digest)
        assert dropped == 3 and kept.num_rows == 9
    finally:
        store.close()


def test_erase_with_project_scopes_the_ledger_to_that_project(tmp_path: Path) -> None:
    """`--project p1` erases p1 only; a replay of the subject's records in another project
    is kept."""
    s = load_settings(None, data_dir=str(tmp_path), coldtier={"erasure_poll_s": 0.1})
    msgs = _messages(s)
    _cold_fill(s, msgs)
    gov = GovernanceStore.from_settings(s)
    status = erase(s, erasure_request(gov, VICTIM, ["p1"]))
    assert status["state"] == "verified", status
    assert _cold_victims(s) == {HELD: 3}
    _cold_fill(s, [dataclasses.replace(m, offset=m.offset + len(msgs)) for m in msgs])
    assert _cold_victims(s) == {HELD: 6}
