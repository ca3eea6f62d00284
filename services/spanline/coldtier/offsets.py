"""Kafka offsets carried in Iceberg snapshot summaries.

The summary of every snapshot holds the next offset to read for each partition the table
has consumed (``{"topic": {"partition": offset}}``), merged from the previous snapshot, so
the current snapshot alone says where to resume. Maintenance commits copy it forward.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from spanline.coldtier.tables import OFFSETS_PROPERTY

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from spanline.core.kafka.records import InMessage

Offsets = dict[str, dict[int, int]]


def batch_offsets(messages: Iterable[InMessage], topic: str) -> Offsets:
    """Next offset to read per partition of ``topic`` after this batch."""
    out: dict[int, int] = {}
    for m in messages:
        if m.topic == topic and m.offset + 1 > out.get(m.partition, -1):
            out[m.partition] = m.offset + 1
    return {topic: out} if out else {}


def first_offsets(messages: Iterable[InMessage], topic: str) -> Offsets:
    """Lowest offset per partition of ``topic`` in this batch."""
    out: dict[int, int] = {}
    for m in messages:
        if m.topic == topic and m.offset < out.get(m.partition, m.offset + 1):
            out[m.partition] = m.offset
    return {topic: out} if out else {}


def overlaps(stored: Mapping[str, Mapping[int, int]], first: Mapping[str, Mapping[int, int]]) -> bool:
    """Whether ``stored`` (a snapshot's next offsets) already holds some of a batch that
    starts at ``first`` in one of its partitions."""
    return any(
        stored.get(topic, {}).get(part, 0) > off
        for topic, parts in first.items()
        for part, off in parts.items()
    )


def already_stored(messages: Sequence[InMessage], stored: Mapping[str, Mapping[int, int]]) -> frozenset[int]:
    """Indexes of ``messages`` whose rows Iceberg holds already: below their partition's
    offset in ``stored`` (the current snapshots), or a repeat of an earlier message here.

    Kafka can hand them out: aiokafka ends an assignment before ``on_partitions_assigned``
    returns, so while the coldtier reads the snapshots to seek, the fetcher may deliver
    records from Kafka's committed offset, which trails the snapshot after a crash between
    the two commits (by up to two batches with two in flight), and again after the seek.
    """
    next_offset: dict[tuple[str, int], int] = {}
    out: list[int] = []
    for i, m in enumerate(messages):
        key = (m.topic, m.partition)
        floor = next_offset.get(key)
        if floor is None:
            floor = stored.get(m.topic, {}).get(m.partition, 0)
        if m.offset < floor:
            out.append(i)
        else:
            next_offset[key] = m.offset + 1
    return frozenset(out)


def table_offsets(table: Table) -> Offsets:
    snap = table.current_snapshot()
    if snap is None or snap.summary is None:
        return {}
    raw = snap.summary.additional_properties.get(OFFSETS_PROPERTY)
    return decode(raw) if raw else {}


def merge(base: Mapping[str, Mapping[int, int]], new: Mapping[str, Mapping[int, int]]) -> Offsets:
    """Per partition the larger offset: several coldtier instances each advance their own."""
    out: Offsets = {t: dict(p) for t, p in base.items()}
    for topic, parts in new.items():
        mine = out.setdefault(topic, {})
        for part, off in parts.items():
            if off > mine.get(part, -1):
                mine[part] = off
    return out


def encode(offsets: Mapping[str, Mapping[int, int]]) -> str:
    return json.dumps(
        {t: {str(p): o for p, o in sorted(parts.items())} for t, parts in sorted(offsets.items())},
        separators=(",", ":"),
    )


def decode(raw: str) -> Offsets:
    data = json.loads(raw)
    return {str(t): {int(p): int(o) for p, o in parts.items()} for t, parts in data.items()}


def summary_properties(table: Table, extra: Mapping[str, Mapping[int, int]] | None = None) -> dict[str, str]:
    """Snapshot properties for a commit on ``table``: its offsets, advanced by ``extra``."""
    merged = merge(table_offsets(table), extra or {})
    return {OFFSETS_PROPERTY: encode(merged)} if merged else {}
