"""Dropping replayed rows of erased subjects before they reach a store.

The ledger holds HMACs, so each distinct value of a subject column in the batch is hashed
once (a batch has far fewer distinct users than rows) and matched against the ledger.
Shared by the writer and the coldtier: a Kafka replay must not bring an erased subject back
into either tier. A digest the ledger scopes to some projects (an erasure with
``--project``, or one that left projects on legal hold out) drops the subject's rows of
those projects only: a held project's records were not erased and must not be lost on
replay either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from spanline.coldtier.governance import LedgerScope


def drop_erased(
    table: pa.Table, ledger: Mapping[str, frozenset[str]], digest: Callable[[str, str], str]
) -> tuple[pa.Table, int]:
    """``table`` without rows whose user_id, conversation_id or trace_id is in the ledger
    (within the projects the ledger entry covers)."""
    if table.num_rows == 0 or not any(ledger.values()):
        return table, 0
    mask: pa.ChunkedArray | pa.Array | None = None
    for kind, digests in ledger.items():
        if not digests or kind not in table.column_names:
            continue
        column = table.column(kind)
        scopes: Mapping[str, tuple[LedgerScope, ...]] = getattr(digests, "scopes", {})
        everywhere: list[str] = []
        for value in pc.unique(column).to_pylist():
            if not value or (d := digest(kind, value)) not in digests:
                continue
            if d not in scopes:
                everywhere.append(value)
                continue
            m = pc.and_(pc.equal(column, value), _in_scope(table, scopes[d]))
            mask = m if mask is None else pc.or_(mask, m)
        if everywhere:
            m = pc.is_in(column, value_set=pa.array(everywhere, type=column.type))
            mask = m if mask is None else pc.or_(mask, m)
    if mask is None:
        return table, 0
    kept = table.filter(pc.invert(pc.fill_null(mask, False)))
    return kept, table.num_rows - kept.num_rows


def _in_scope(table: pa.Table, scopes: tuple[LedgerScope, ...]) -> pa.ChunkedArray | pa.Array:
    """Rows whose project one of ``scopes`` covers. Every spanline table has ``project_id``;
    the distinct projects of a batch are few, so each is decided once."""
    projects = table.column("project_id")
    covered = [p for p in pc.unique(projects).to_pylist() if any(s.covers(p or "") for s in scopes)]
    return pc.is_in(projects, value_set=pa.array(covered, type=projects.type))
