"""The compiled score reader against the Python rows: same rows, same errors, same batch.

``ScoreRows`` reads record values (a ``Score`` or a trace's ``ScoreSet``) with the compiled
reader when it is built and gives anything outside its fast subset to the Python rows. For
any input (randomised scores as the scorer writes them, concatenated parts that protobuf
merges, bad ids, times out of range, repeated attribute keys, unknown fields, mutated
garbage) both must produce the same table and reject the same values with the same reason,
and a rejected value (a whole set) must leave the batch as it was.
"""

from __future__ import annotations

import math
import os
import random
import struct
from typing import Any

import pyarrow as pa
import pytest

from spanline.spans.row_errors import TIME_NS_MAX
from spanline.spans.rows import RowBuildError, ScoreRows
from spanline.spans.score_records import pack_scores
from spanline.v1.spanline_pb2 import Score

T0 = 1_765_000_000_000_000_000


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text(rng: random.Random) -> str:
    return rng.choice(
        ["", "a", "latency_ms", "Zürich", "名前", "🙂 emoji", "x" * rng.randrange(1, 40), "\x00nul"]
    )


def _score(rng: random.Random) -> bytes:
    """One score's bytes, sometimes in parts that protobuf merges (as the scorer writes them)."""
    bad = rng.random() < 0.04  # one field of this score is wrong
    which = rng.randrange(5) if bad else -1
    wrong_traces = [b"", bytes(16), os.urandom(15), os.urandom(17)]
    trace = wrong_traces[rng.randrange(4)] if which == 0 else os.urandom(16)
    span = rng.choice([b"", b"", os.urandom(8), bytes(8)]) if which != 1 else os.urandom(4)
    good_times = [0, T0, T0 + rng.randrange(10**9), TIME_NS_MAX]
    fields: dict[str, Any] = {
        "score_id": "" if which == 2 else os.urandom(8).hex(),
        "project_id": rng.choice(["", "", "proj", "Projekt-ü"]),
        "trace_id": trace,
        "span_id": span,
        "name": _text(rng),
        "score_value": rng.choice([0.0, 1.0, -3.5, 1e300, math.inf, math.nan, rng.random()]),
        "score_label": _text(rng),
        "explanation": _text(rng),
        "evaluator_kind": rng.choice(["heuristic", "llm_judge", ""]),
        "sampling_reason": rng.choice(["", "stratum:chat", "error"]),
        "sampling_weight": rng.choice([0.0, 1.0, 20.0]),
        "time_unix_nano": rng.choice([TIME_NS_MAX + 1, 2**64 - 1]) if which == 3 else rng.choice(good_times),
    }
    attributes = {_text(rng): _text(rng) for _ in range(rng.randrange(5))}
    names = list(fields)
    rng.shuffle(names)
    cut = rng.randrange(len(names) + 1)
    parts = [
        Score(**{k: fields[k] for k in names[:cut]}, attributes=attributes).SerializeToString(),
        Score(**{k: fields[k] for k in names[cut:]}).SerializeToString(),
    ]
    roll = rng.random()
    if roll < 0.05:  # a scalar set twice: the last wins
        parts.append(Score(name=_text(rng), time_unix_nano=T0 + 7).SerializeToString())
    elif roll < 0.08 and attributes:  # an attribute key twice: the map keeps the last
        key = next(iter(attributes))
        parts.append(Score(attributes={key: "again"}).SerializeToString())
    elif roll < 0.10:  # a field Score does not have (kept as unknown by protobuf)
        parts.append(_varint(20 << 3) + _varint(5))
    elif roll < 0.12:  # a known field with the wrong wire type
        parts.append(_varint(6 << 3) + _varint(5))
    return b"".join(parts)


def _value(rng: random.Random) -> bytes:
    if rng.random() < 0.3:
        return _score(rng)
    return pack_scores([_score(rng) for _ in range(rng.randrange(1, 6))])


def _mutate(rng: random.Random, value: bytes) -> bytes:
    b = bytearray(value)
    i = rng.randrange(len(b)) if b else 0
    kind = rng.randrange(4)
    if kind == 0 and b:
        b[i] ^= 1 << rng.randrange(8)
    elif kind == 1:
        del b[i:]
    elif kind == 2:
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
    elif b:
        b[i] = rng.randrange(256)
    return bytes(b)


def _feed(rows: ScoreRows, corpus: list[bytes]) -> list[str]:
    errors = []
    for i, value in enumerate(corpus):
        try:
            rows.add_bytes(value, "p" if i % 7 else "", T0 + i)
        except RowBuildError as exc:
            errors.append(f"{i}: {exc}")
    return errors


def _canonical(table: pa.Table) -> list[str]:
    """Rows in one order (the compiled reader's rows come before the Python rows')."""
    return sorted(repr(sorted(row.items())) for row in table.to_pylist())


def _same_tables(ref: pa.Table, got: pa.Table) -> None:
    assert got.schema == ref.schema
    assert got.num_rows == ref.num_rows
    assert _canonical(got) == _canonical(ref)


def test_the_compiled_reader_is_used_by_default() -> None:
    assert ScoreRows()._wire is not None
    assert ScoreRows("python")._wire is None
    with pytest.raises(ValueError, match="unknown score builder"):
        ScoreRows("rust")


def test_without_the_extension_auto_runs_python_and_compiled_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from spanline.spans import rows

    monkeypatch.setattr(rows, "COMPILED_AVAILABLE", False)
    assert ScoreRows()._wire is None
    with pytest.raises(RuntimeError, match="wire_spans is not built"):
        ScoreRows("compiled")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_randomised_scores_read_the_same(seed: int) -> None:
    rng = random.Random(seed)
    corpus = [_value(rng) for _ in range(600)]
    ref, compiled = ScoreRows("python"), ScoreRows("compiled")
    errors = _feed(ref, corpus)
    assert _feed(compiled, corpus) == errors
    assert 20 < len(errors) < 300  # both outcomes are exercised
    assert len(compiled) == len(ref) > 500
    assert len(compiled._wire) > 0.5 * len(compiled)  # most stay on the compiled path
    _same_tables(ref.to_arrow(), compiled.to_arrow())
    _same_tables(ref.take(), compiled.take())
    assert len(compiled) == 0 and compiled.take().num_rows == 0


@pytest.mark.parametrize("seed", [11, 12])
def test_garbage_is_rejected_alike_and_leaves_the_batch_intact(seed: int) -> None:
    rng = random.Random(seed)
    corpus = [v if rng.random() < 0.3 else _mutate(rng, v) for v in (_value(rng) for _ in range(500))]
    ref, compiled = ScoreRows("python"), ScoreRows("compiled")
    errors = _feed(ref, corpus)
    assert _feed(compiled, corpus) == errors
    assert 50 < len(errors) < len(corpus)
    _same_tables(ref.take(), compiled.take())


def test_a_set_with_one_bad_score_adds_none_of_it() -> None:
    good = Score(score_id="a", trace_id=os.urandom(16), name="error").SerializeToString()
    bad = Score(score_id="b", trace_id=bytes(16), name="error").SerializeToString()  # all-zero trace id
    rows = ScoreRows("compiled")
    assert rows.add_bytes(pack_scores([good, good]), "p", T0) == 2
    with pytest.raises(RowBuildError, match="trace_id is all zeros"):
        rows.add_bytes(pack_scores([good, bad]), "p", T0)
    assert len(rows) == 2


def test_the_scorers_sets_take_no_python_row() -> None:
    """What the scorer writes (spanline.scorer.scores) stays on the compiled path whole."""
    from spanline.scorer.scores import trace_score_values

    values = trace_score_values(
        project_id="default",
        trace_id=os.urandom(16),
        span_id=b"",
        kind="heuristic",
        time_unix_nano=T0,
        attributes={"spanline.scorer.closed_by": "complete", "gen_ai.request.model": "gpt-4o"},
        results=[("latency_ms", "1", 12.5, "", ""), ("error", "1", 0.0, "", "")],
    )
    rows = ScoreRows("compiled")
    rows.add_bytes(pack_scores(values), "default", T0)
    assert not rows._rows and len(rows._wire) == 2
    table = rows.take()
    ref = ScoreRows("python")
    ref.add_bytes(pack_scores(values), "default", T0)
    _same_tables(ref.take(), table)
    assert table.column("attributes").to_pylist()[0][0] == ("gen_ai.request.model", "gpt-4o")  # sorted


def test_values_round_trip_bit_for_bit() -> None:
    rows = ScoreRows("compiled")
    weird = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000123))[0]  # a NaN with a payload
    rows.add_bytes(
        Score(
            score_id="x", trace_id=os.urandom(16), score_value=weird, sampling_weight=-0.0
        ).SerializeToString(),
        "p",
        T0,
    )
    table = rows.take()
    value = table.column("score_value").to_pylist()[0]
    assert struct.pack("<d", value) == struct.pack("<d", weird)
    assert math.copysign(1.0, table.column("sampling_weight").to_pylist()[0]) == -1.0
