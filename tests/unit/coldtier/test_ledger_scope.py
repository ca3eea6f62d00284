"""The erasure ledger's scopes: an entry of an erasure that covered some projects drops the
subject's replayed rows of those projects only."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from spanline.coldtier.governance import GovernanceStore
from spanline.coldtier.ledger_filter import drop_erased


def _rows() -> pa.Table:
    return pa.table(
        {
            "project_id": ["p1", "held", "p2", "p1"],
            "user_id": ["u", "u", "u", "other"],
            "trace_id": ["t1", "t2", "t3", "t4"],
        }
    )


def test_entry_without_scope_drops_everywhere(tmp_path: Path) -> None:
    gov = GovernanceStore(str(tmp_path), key=b"k")
    gov.add_to_ledger("user_id", [gov.digest("user_id", "u")], "er-1")
    kept, dropped = drop_erased(_rows(), gov.ledger(), gov.digest)
    assert dropped == 3 and kept.column("user_id").to_pylist() == ["other"]


def test_entry_that_left_a_held_project_out_keeps_its_rows(tmp_path: Path) -> None:
    gov = GovernanceStore(str(tmp_path), key=b"k")
    gov.add_to_ledger("user_id", [gov.digest("user_id", "u")], "er-1", excluded_projects=["held"])
    kept, dropped = drop_erased(_rows(), gov.ledger(), gov.digest)
    assert dropped == 2 and kept.column("project_id").to_pylist() == ["held", "p1"]


def test_entry_of_one_project_and_a_later_global_one(tmp_path: Path) -> None:
    gov = GovernanceStore(str(tmp_path), key=b"k")
    d = gov.digest("user_id", "u")
    gov.add_to_ledger("user_id", [d], "er-1", projects=["p2"])
    kept, dropped = drop_erased(_rows(), gov.ledger(), gov.digest)
    assert dropped == 1 and "p2" not in kept.column("project_id").to_pylist()
    gov.add_to_ledger("user_id", [d], "er-2", projects=["p1"])
    kept, dropped = drop_erased(_rows(), gov.ledger(), gov.digest)
    assert dropped == 2 and kept.column("project_id").to_pylist() == ["held", "p1"]
    gov.add_to_ledger("user_id", [d], "er-3")  # erased everywhere: scopes no longer narrow it
    assert d not in gov.ledger()["user_id"].scopes
    assert drop_erased(_rows(), gov.ledger(), gov.digest)[1] == 3
