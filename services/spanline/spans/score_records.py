"""The values of ``spanline.scores`` records: one ``Score``, or a trace's scores as a ``ScoreSet``.

The scorer emits ~9 deterministic scores a trace. As one record each, every reader (writer,
coldtier, alerter) paid the Kafka client's per-record cost ~9 times a trace, more than
for the trace's spans themselves; packed, it pays it once. The judge's scores stay single
records, and records written before packing are single ``Score`` messages, so every reader
goes through :func:`unpack_scores`, which takes either.

A ``ScoreSet`` is built from already-serialized scores without parsing them: its wire form
is each score as field 16, length-delimited. That field's tag (``0x82 0x01``) is not the
tag of any ``Score`` field, which is how a reader tells the two apart from the first bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

from spanline.core.protobuf_wire import length_delimited
from spanline.v1.spanline_pb2 import Score, ScoreSet

SCORE_SET_TAG = b"\x82\x01"
"""Field 16, wire type 2: how every serialized ``ScoreSet`` with a score begins."""


def pack_scores(values: Sequence[bytes]) -> bytes:
    """One ``ScoreSet`` holding the serialized ``Score`` messages ``values`` (at least one)."""
    if not values:
        raise ValueError("a score set needs at least one score")
    return b"".join(length_delimited(SCORE_SET_TAG, v) for v in values)


def is_score_set(value: bytes) -> bool:
    return value.startswith(SCORE_SET_TAG)


def unpack_scores(value: bytes) -> list[Score]:
    """The scores of one record value, a ``ScoreSet`` or a single ``Score``.

    Raises ``google.protobuf.message.DecodeError`` when the bytes are neither.
    """
    if value.startswith(SCORE_SET_TAG):
        return list(ScoreSet.FromString(value).scores)
    return [Score.FromString(value)]
