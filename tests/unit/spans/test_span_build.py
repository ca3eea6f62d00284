"""The single-pass span builder against the general (reference) path, on randomised spans."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from spanline.loadgen.otlp_values import key_value
from spanline.spans.object_store import LocalObjectStore, PayloadOffloader
from spanline.spans.otlp_mirror import _runtime_key_value, decode_key_value
from spanline.spans.pricing import PricingTable
from spanline.spans.rows import RowBuildError, SpanRows
from spanline.spans.span_build import SPAN_COLUMNS, SpanBuilder
from tests.unit.spans.span_corpus import feed, make_corpus


def _build(
    corpus: list[bytes], offloader: PayloadOffloader, *, single_pass: bool
) -> tuple[pa.Table, list[str]]:
    buf = SpanRows(PricingTable.load(), offloader)
    buf._builder = SpanBuilder(buf.pricing, offloader.offload, single_pass=single_pass)
    errors = feed(buf.add_bytes, corpus)
    return buf.take(), errors


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_single_pass_matches_general_path(seed: int, tmp_path: Path) -> None:
    corpus = make_corpus(400, seed)
    # a low threshold so the claim check runs on both paths too
    offloader = PayloadOffloader(LocalObjectStore(tmp_path), 300)
    fast, fast_errors = _build(corpus, offloader, single_pass=True)
    ref, ref_errors = _build(corpus, offloader, single_pass=False)
    assert fast_errors == ref_errors
    assert fast.schema == ref.schema and fast.num_rows == ref.num_rows > 1000
    for name, _ in SPAN_COLUMNS:
        got, want = fast[name].to_pylist(), ref[name].to_pylist()
        diffs = [i for i, (x, y) in enumerate(zip(got, want, strict=True)) if not _same(x, y)]
        assert not diffs, f"{name} differs at rows {diffs[:5]}: {got[diffs[0]]!r} != {want[diffs[0]]!r}"


def test_corpus_exercises_both_paths_and_all_conventions() -> None:
    """Guards the test above against a corpus that stops covering what it claims to."""
    corpus = make_corpus(400, 1)
    builder = SpanBuilder(PricingTable.load(), lambda text: (text, len(text)))
    general = 0
    original = builder._general

    def counting(*args: Any) -> Any:
        nonlocal general
        general += 1
        return original(*args)

    builder._general = counting  # type: ignore[method-assign]
    total = 0
    for value in corpus:
        try:
            total += builder.add(value, "p", 1)
        except RowBuildError:
            continue
    conventions = set(builder.to_arrow()["genai_convention"].to_pylist())
    assert conventions == {"", "otel", "openinference", "openllmetry"}
    assert total == len(builder) > 1000
    assert 0.2 * total < general < 0.8 * total


def test_failed_message_leaves_the_batch_as_it_was() -> None:
    corpus = make_corpus(50, 4)
    buf = SpanRows(PricingTable.load())
    for value in corpus[:25]:
        buf.add_bytes(value, "p", 1)
    before = buf.to_arrow()
    bad = TracesData.FromString(corpus[25])
    spans = bad.resource_spans[0].scope_spans[0].spans
    spans[len(spans) - 1].start_time_unix_nano = 0  # the last span fails, after the others converted
    with pytest.raises(RowBuildError, match="start time"):
        buf.add(bad, "p", 1)
    with pytest.raises(RowBuildError):
        buf.add_bytes(corpus[26][:-3] + b"\xff\xff\xff", "p", 1)
    assert buf.to_arrow().equals(before)


def _runtime_or_error(raw: bytes) -> object:
    try:
        return _runtime_key_value(raw)
    except DecodeError:
        return DecodeError


def _decoded_or_error(raw: bytes) -> object:
    try:
        return decode_key_value(raw)
    except DecodeError:
        return DecodeError


def test_key_value_decoder_agrees_with_the_protobuf_runtime() -> None:
    """Canonical and odd encodings, and thousands of corrupted ones: same value or same error."""
    rng = random.Random(11)
    samples: list[bytes] = []
    for key in ("k", "gen_ai.usage.input_tokens", "ключ", "x" * 200):
        for value in (
            "",
            "v",
            "é" * 100,
            "a" * 20_000,
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            -1,
            -(2**63),
            2**63 - 1,
        ):
            samples.append(key_value(key, value).SerializeToString())
        for extra in (True, False, 0.5, float("nan"), -0.0):
            samples.append(key_value(key, extra).SerializeToString())
        samples.append(KeyValue(key=key).SerializeToString())  # no value
        kv = KeyValue(key=key)
        kv.value.array_value.values.add().string_value = "a"
        samples.append(kv.SerializeToString())
    samples += [
        b"\x0a\x01k\x12\x02\x18\x85\x00"[:6] + b"\x03\x18\x85\x00",  # overlong varint
        b"\x12\x02\x0a\x00\x0a\x01k",  # value before key
        b"\x0a\x01k\x12\x02\x0a\x00\x12\x02\x18\x01",  # value twice (merged by the runtime)
        b"\x0a\x01k\x12\x03\x0a\x01\xff",  # invalid UTF-8
        b"\x0a\x01k\x12\x0b\x18" + b"\xff" * 9 + b"\x7f",  # varint over 64 bits
    ]
    mutated = []
    for _ in range(3000):
        raw = bytearray(rng.choice(samples))
        for _ in range(rng.randrange(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        mutated.append(bytes(raw))
    for raw in samples + mutated:
        got, want = _decoded_or_error(raw), _runtime_or_error(raw)
        if isinstance(got, tuple) and isinstance(want, tuple) and got[2] != got[2]:
            assert got[:2] == want[:2] and want[2] != want[2]  # NaN
        else:
            assert got == want, raw[:40]
