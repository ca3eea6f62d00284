"""Which messages of a batch the current snapshots already hold (offsets.already_stored,
offsets.overlaps)."""

from __future__ import annotations

from spanline.coldtier.offsets import already_stored, first_offsets, overlaps
from spanline.core.kafka.records import InMessage


def _m(partition: int, offset: int, topic: str = "t") -> InMessage:
    return InMessage(topic, partition, offset, None, b"", [], 0)


def test_below_the_snapshot_offset_of_its_partition() -> None:
    batch = [_m(0, 3), _m(0, 4), _m(0, 5), _m(1, 0), _m(1, 7)]
    assert already_stored(batch, {"t": {0: 5, 1: 7}}) == {0, 1, 3}


def test_a_partition_or_topic_the_snapshot_never_saw_is_new() -> None:
    batch = [_m(2, 0), _m(0, 0, topic="u")]
    assert already_stored(batch, {"t": {0: 9}}) == frozenset()


def test_a_record_delivered_again_in_the_same_batch() -> None:
    # fetched from the committed offset 3 before the seek to 5, then again from 5
    batch = [_m(0, 3), _m(0, 4), _m(0, 5), _m(0, 6), _m(1, 0), _m(0, 5), _m(0, 6), _m(0, 7)]
    assert already_stored(batch, {"t": {0: 5}}) == {0, 1, 5, 6}


def test_first_offsets_and_overlap() -> None:
    batch = [_m(0, 7), _m(0, 5), _m(1, 9), _m(0, 1, topic="u")]
    first = first_offsets(batch, "t")
    assert first == {"t": {0: 5, 1: 9}}
    assert not overlaps({"t": {0: 5, 1: 9}}, first)  # stored up to exactly where the batch starts
    assert not overlaps({}, first)
    assert overlaps({"t": {1: 10}}, first)  # message 9 of partition 1 is stored already
    assert not overlaps({"u": {0: 100}}, first)
