"""Dropping replayed rows of erased subjects before they reach a store.

The ledger holds HMACs, so each distinct value of a subject column in the batch is hashed
once (a batch has far fewer distinct users than rows) and matched against the ledger.
Shared by the writer and the coldtier: a Kafka replay must not bring an erased subject back
into either tier.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pyarrow as pa
import pyarrow.compute as pc


def drop_erased(
    table: pa.Table, ledger: Mapping[str, frozenset[str]], digest: Callable[[str, str], str]
) -> tuple[pa.Table, int]:
    """``table`` without rows whose user_id, conversation_id or trace_id is in the ledger."""
    if table.num_rows == 0 or not any(ledger.values()):
        return table, 0
    mask: pa.ChunkedArray | pa.Array | None = None
    for kind, digests in ledger.items():
        if not digests or kind not in table.column_names:
            continue
        column = table.column(kind)
        hits = [v for v in pc.unique(column).to_pylist() if v and digest(kind, v) in digests]
        if not hits:
            continue
        m = pc.is_in(column, value_set=pa.array(hits, type=column.type))
        mask = m if mask is None else pc.or_(mask, m)
    if mask is None:
        return table, 0
    kept = table.filter(pc.invert(pc.fill_null(mask, False)))
    return kept, table.num_rows - kept.num_rows
