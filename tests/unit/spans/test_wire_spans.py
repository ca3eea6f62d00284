"""The compiled span builder against the Python reference: same rows, same errors, same batch.

The compiled builder handles a fast subset of messages and hands everything else to the
Python builder, so the contract checked here is simple: for any input -- randomised spans of
the three conventions, mutated garbage, edge values -- the two produce the same table and
reject the same messages with the same reason, and a rejected message leaves the batch as
it was.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from spanline.loadgen.otlp_values import key_value
from spanline.spans.metrics import SPAN_BUILD_FALLBACKS
from spanline.spans.object_store import LocalObjectStore, ObjectStoreError, PayloadOffloader
from spanline.spans.pricing import PricingTable
from spanline.spans.rows import RowBuildError, SpanRows
from spanline.spans.span_build import COMPILED_AVAILABLE, SPAN_COLUMNS, CompiledSpanBuilder, SpanBuilder
from tests.unit.spans.span_corpus import feed, make_corpus


def test_the_compiled_builder_is_built_and_used_by_default() -> None:
    """make builds the extension; a silent fallback to Python would void the tests below."""
    assert COMPILED_AVAILABLE
    assert SpanRows(PricingTable.load()).builder_name == "compiled"
    assert SpanRows(PricingTable.load(), builder="python").builder_name == "python"
    with pytest.raises(ValueError, match="unknown span builder"):
        SpanRows(PricingTable.load(), builder="rust")


def test_without_the_extension_auto_runs_python_and_compiled_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from spanline.spans import rows, span_build

    monkeypatch.setattr(span_build, "_wire", None)
    monkeypatch.setattr(rows, "COMPILED_AVAILABLE", False)
    assert SpanRows(PricingTable.load()).builder_name == "python"
    with pytest.raises(RuntimeError, match="wire_spans is not built"):
        SpanRows(PricingTable.load(), builder="compiled")


def _pair(tmp_path: Path, threshold: int = 300) -> tuple[SpanBuilder, CompiledSpanBuilder]:
    offloader = PayloadOffloader(LocalObjectStore(tmp_path), threshold)
    pricing = PricingTable.load()
    return SpanBuilder(pricing, offloader.offload), CompiledSpanBuilder(pricing, offloader.offload, threshold)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows in a canonical order: the compiled builder appends fallback messages' rows last."""
    rows = table.to_pylist()
    for i, row in enumerate(rows):
        row["_pos"] = i
    # within one message (same ingested_at) rows keep their order in both builders
    rows.sort(key=lambda r: (r["ingested_at"], r["_pos"]))
    for row in rows:
        del row["_pos"]
    return rows


def assert_same_tables(ref: pa.Table, got: pa.Table) -> None:
    assert got.schema == ref.schema
    assert got.num_rows == ref.num_rows
    for n, (want, have) in enumerate(zip(_rows(ref), _rows(got), strict=True)):
        for name, _ in SPAN_COLUMNS:
            assert _same(want[name], have[name]), f"row {n} {name}: {have[name]!r} != {want[name]!r}"


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_randomised_corpus_builds_the_same_rows(seed: int, tmp_path: Path) -> None:
    ref, compiled = _pair(tmp_path)
    corpus = make_corpus(400, seed)
    assert feed(compiled.add, corpus) == feed(ref.add, corpus)
    assert len(compiled) == len(ref) > 1000
    # most messages stay on the compiled path (scope attributes are the corpus' fallbacks)
    assert len(compiled.reference) < len(compiled) * 0.25
    assert_same_tables(ref.to_arrow(), compiled.to_arrow())


def _mutate(rng: random.Random, value: bytes) -> bytes:
    b = bytearray(value)
    kind = rng.randrange(5)
    i = rng.randrange(len(b))
    if kind == 0:
        b[i] ^= 1 << rng.randrange(8)
    elif kind == 1:
        del b[i:]
    elif kind == 2:
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
    elif kind == 3:
        b[i] = rng.randrange(256)
    else:
        del b[i : i + rng.randrange(1, 8)]
    return bytes(b)


@pytest.mark.parametrize("seed", [11, 12])
def test_garbage_is_rejected_alike_and_leaves_the_batch_intact(seed: int, tmp_path: Path) -> None:
    """Mutated messages interleaved with good ones: same errors, same rows, in one batch each."""
    rng = random.Random(seed)
    good = make_corpus(300, seed)
    corpus = [v if rng.random() < 0.3 else _mutate(rng, v) for v in good]
    ref, compiled = _pair(tmp_path)
    ref_errors = feed(ref.add, corpus)
    assert feed(compiled.add, corpus) == ref_errors
    assert 50 < len(ref_errors) < len(corpus)  # both outcomes are exercised
    assert_same_tables(ref.to_arrow(), compiled.to_arrow())


def _message(*spans_attrs: list[tuple[str, object]], scope_attr: bool = False) -> bytes:
    td = TracesData()
    ss = td.resource_spans.add().scope_spans.add()
    if scope_attr:
        ss.scope.attributes.add(key="a").value.string_value = "b"
    for i, attrs in enumerate(spans_attrs):
        span = ss.spans.add(trace_id=b"\x01" * 16, span_id=bytes([i + 1]) * 8, name="s")
        span.start_time_unix_nano = 1_763_000_000_000_000_000
        span.end_time_unix_nano = span.start_time_unix_nano + 5
        for key, value in attrs:
            span.attributes.append(key_value(key, value))
    return td.SerializeToString()


def test_edge_values_and_the_map_text_of_each_type(tmp_path: Path) -> None:
    message = _message(
        [
            ("gen_ai.response.finish_reasons", ["stop", 'a"b\\c\n\r\t\b\f\x01\x1f\x7fé', ""]),
            ("tags", []),
            ("d1", 1e16),
            ("d2", float("nan")),
            ("d3", float("-inf")),
            ("d4", -0.0),
            ("i", -(2**63)),
            ("b", False),
            ("e", ""),
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.usage.input_tokens", 10),
            ("gen_ai.usage.output_tokens", 1e30),  # not a UInt64 count: NULL, not a failed batch
            ("gen_ai.request.model", "gpt-4o"),
            ("gen_ai.provider.name", "openai"),
            ("gen_ai.input.messages", "x" * 400),  # above the threshold: claim-checked
        ],
        [("gen_ai.tool.name", "t"), ("gen_ai.tool.name", "u")],  # a repeated key: the general path
    )
    ref, compiled = _pair(tmp_path)
    assert ref.add(message, "p", 1) == compiled.add(message, "p", 1) == 2
    assert len(compiled.reference) == 0
    got = compiled.to_arrow()
    assert_same_tables(ref.to_arrow(), got)
    attrs = dict(got["attributes"][0].as_py())
    assert attrs["gen_ai.response.finish_reasons"] == (
        '["stop","a\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\x7fé",""]'
    )
    assert (attrs["tags"], attrs["d1"], attrs["d2"], attrs["d3"], attrs["d4"]) == (
        "[]",
        "1e+16",
        "nan",
        "-inf",
        "-0.0",
    )
    assert (attrs["i"], attrs["b"], attrs["e"]) == (str(-(2**63)), "false", "")
    row = got.slice(0, 1).to_pylist()[0]
    assert row["output_tokens"] is None and row["input_tokens"] == 10
    assert row["input_messages"].startswith("spanline-ref:sha256:") and row["input_messages_bytes"] == 400
    assert got["tool_name"][1].as_py() == "u"


def test_messages_outside_the_fast_subset_go_to_the_python_builder(tmp_path: Path) -> None:
    def count(reason: str) -> float:
        return SPAN_BUILD_FALLBACKS.labels(reason=reason)._value.get()

    ref, compiled = _pair(tmp_path)
    before = count("outside_fast_subset")
    message = _message([("k", "v")], scope_attr=True)
    assert compiled.add(message, "p", 1) == ref.add(message, "p", 1) == 1
    assert count("outside_fast_subset") == before + 1
    assert len(compiled.reference) == 1
    # an error the reference defines: its message, the compiled batch untouched
    before_errors = count("outside_fast_subset")
    with pytest.raises(RowBuildError, match="project id is empty"):
        compiled.add(_message([("k", "v")]), "", 1)
    assert count("outside_fast_subset") == before_errors + 1
    assert len(compiled) == 1
    assert_same_tables(ref.to_arrow(), compiled.to_arrow())


def test_object_store_failures_propagate(tmp_path: Path) -> None:
    """An unavailable object store is an infrastructure failure (retry), never a bad message."""

    def broken(text: str) -> tuple[str, int]:
        raise ObjectStoreError("store down")

    compiled = CompiledSpanBuilder(PricingTable.load(), broken, 10)
    good = _message([("gen_ai.operation.name", "chat"), ("gen_ai.input.messages", "x" * 50)])
    with pytest.raises(ObjectStoreError):
        compiled.add(good, "p", 1)
    assert len(compiled) == 0


def test_many_distinct_keys_reset_the_key_table(tmp_path: Path) -> None:
    """Keys are classified once and kept in a bounded table; past its limit it starts over."""
    ref, compiled = _pair(tmp_path)
    corpus = [
        _message([(f"app.key{m}.{k}", k) for k in range(1000)] + [("gen_ai.operation.name", "chat")])
        for m in range(60)  # 60 000 distinct keys, the table holds 50 000
    ]
    assert feed(compiled.add, corpus) == feed(ref.add, corpus) == []
    assert_same_tables(ref.to_arrow(), compiled.to_arrow())


def test_a_message_with_more_keys_than_the_table_holds_goes_to_the_python_builder(tmp_path: Path) -> None:
    """The key table is cleared between messages only; one message must not fill it."""
    ref, compiled = _pair(tmp_path)
    huge = _message([(f"k{i}", i) for i in range(70_000)])
    assert feed(compiled.add, [huge]) == feed(ref.add, [huge]) == []
    assert len(compiled.reference) == 1
    assert_same_tables(ref.to_arrow(), compiled.to_arrow())
    # and the next message is the compiled builder's again (the table was cleared)
    small = _message([("k", "v")])
    compiled.add(small, "p", 2)
    assert len(compiled) == 2 and len(compiled.reference) == 1


def test_memory_a_huge_batch_grew_is_given_back_once_batches_are_small(tmp_path: Path) -> None:
    compiled = CompiledSpanBuilder(PricingTable.load(), lambda text: (text, len(text)), None)
    wire = compiled._wire
    big = _message([("gen_ai.operation.name", "chat"), ("gen_ai.input.messages", "x" * 40_000_000)])
    compiled.add(big, "p", 1)
    assert len(compiled.reference) == 0 and wire.capacity > 40_000_000
    compiled.to_arrow()
    compiled.clear()  # that batch filled its buffers: kept for the next one
    assert wire.capacity > 40_000_000
    compiled.add(_message([("k", "v")]), "p", 2)
    compiled.clear()  # a small batch: the big buffers go
    assert wire.capacity < 5_000_000


def test_take_hands_the_columns_over_without_a_copy_and_keeps_no_capacity(tmp_path: Path) -> None:
    """take() moves the builder's memory into the table: the same rows as the reference, the
    builder empty and holding no big buffer, and the table still valid after the builder
    filled new buffers and went away (the memory belongs to the table now)."""
    ref, compiled = _pair(tmp_path)
    corpus = make_corpus(400, 7)
    assert feed(compiled.add, corpus) == feed(ref.add, corpus)
    assert len(compiled.reference) > 0  # both parts of the batch are taken
    wire = compiled._wire
    before = wire.capacity
    want = ref.take()
    got = compiled.take()
    assert len(ref) == len(compiled) == 0 and len(compiled.reference) == 0
    assert wire.capacity < before / 2, (before, wire.capacity)  # offsets start at the last size
    compiled.add(_message([("k", "v")]), "p", 2)
    del compiled, wire
    assert_same_tables(want, got)
    got.validate(full=True)


def test_span_rows_take_hands_over_and_to_arrow_keeps(tmp_path: Path) -> None:
    rows = SpanRows(PricingTable.load())
    corpus = make_corpus(50, 8)
    feed(rows.add_bytes, corpus)
    kept = rows.to_arrow()
    assert len(rows) == kept.num_rows > 0
    taken = rows.take()
    assert len(rows) == 0 and taken.equals(kept)
    assert rows.take().num_rows == 0


def test_empty_batches_and_clear(tmp_path: Path) -> None:
    ref, compiled = _pair(tmp_path)
    assert compiled.to_arrow().schema == ref.to_arrow().schema
    compiled.add(_message([("k", "v")]), "p", 1)
    compiled.clear()
    assert len(compiled) == 0 and compiled.to_arrow().num_rows == 0


def _utf8_samples(rng: random.Random) -> list[bytes]:
    """Byte strings around every UTF-8 edge: overlongs, surrogates, > U+10FFFF, truncations."""
    edges = [b"\xc0\x80", b"\xc1\xbf", b"\xc2\x80", b"\xdf\xbf", b"\xe0\x80\x80", b"\xe0\x9f\xbf",
             b"\xe0\xa0\x80", b"\xed\x9f\xbf", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xee\x80\x80",
             b"\xef\xbf\xbf", b"\xf0\x8f\xbf\xbf", b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf",
             b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xff", b"\x80", b"\xe2\x82",
             b"\xf0\x9f\x98"]  # fmt: skip
    samples = []
    for _ in range(3000):
        parts = [rng.choice(edges) if rng.random() < 0.5 else rng.choice((b"a", b"abcdefgh" * 2, b"\x00"))]
        parts += [rng.choice(edges) for _ in range(rng.randrange(3))]
        if rng.random() < 0.3:
            parts.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6))))
        samples.append(b"".join(parts))
    return samples + edges


def _with_string(raw: bytes, where: str) -> bytes:
    """A one-span message whose attribute value (or key, or span name) is ``raw`` on the wire."""

    def ld(tag: int, body: bytes) -> bytes:
        return bytes([tag]) + _varint(len(body)) + body

    kv = ld(0x0A, raw if where == "key" else b"k") + ld(0x12, ld(0x0A, raw if where == "value" else b"v"))
    span = (
        ld(0x0A, b"\x01" * 16)
        + ld(0x12, b"\x02" * 8)
        + ld(0x2A, raw if where == "name" else b"s")
        + b"\x39"
        + (10).to_bytes(8, "little")
        + ld(0x4A, kv)
    )
    return ld(0x0A, ld(0x12, ld(0x12, span)))


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@pytest.mark.parametrize("where", ["value", "key", "name"])
def test_utf8_checks_agree_with_python(where: str, tmp_path: Path) -> None:
    samples = _utf8_samples(random.Random(where))
    ref, compiled = _pair(tmp_path)
    valid = 0
    for raw in samples:
        message = _with_string(raw, where)
        rows, fallback_rows = len(compiled), len(compiled.reference)
        assert feed(compiled.add, [message]) == feed(ref.add, [message]), raw
        try:
            raw.decode("utf-8")
            valid += 1
            assert len(compiled) == rows + 1 and len(compiled.reference) == fallback_rows, raw
        except UnicodeDecodeError:
            assert len(compiled) == rows, raw
    assert 100 < valid < len(samples) - 100
    assert_same_tables(ref.to_arrow(), compiled.to_arrow())


def test_a_build_whose_constants_differ_from_genai_fields_is_refused() -> None:
    """The C module keeps copies of the key bits and convention names; a stale build must not run."""
    import subprocess
    import sys

    code = (
        "import spanline.spans.wire_spans as w; w.KEY_BITS['F_OI'] = 99\n"
        "try:\n    import spanline.spans.span_build\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "does not match genai_fields" in out


class _CountingGeneral(CompiledSpanBuilder):
    """Counts the spans the compiled loop hands to the Python builder's general path."""

    general_calls = 0

    def _general(self, value: bytes, ri: int, si: int, pi: int) -> Any:
        self.general_calls += 1
        return super()._general(value, ri, si, pi)


def test_both_conventions_with_flattened_lists_stay_on_the_compiled_path(tmp_path: Path) -> None:
    """Agents instrumented with both conventions send OpenInference's flattened message lists
    next to gen_ai.input/output.messages; the lists then fill no column and are plain map
    entries, so such a span needs no general path. Where a list does fill a column (the
    output messages missing), the general path builds it; rows are the reference's either way."""
    from spanline.loadgen.genai_traces import build_requests

    offloader = PayloadOffloader(LocalObjectStore(tmp_path), 300)
    pricing = PricingTable.load()
    ref, compiled = SpanBuilder(pricing, offloader.offload), _CountingGeneral(pricing, offloader.offload, 300)
    corpus = [
        TracesData(resource_spans=r.resource_spans).SerializeToString()
        for r in build_requests(500, 100, seed=3, start_time_ns=1_763_000_000_000_000_000, profile="heavy")
    ]
    assert feed(compiled.add, corpus) == feed(ref.add, corpus)
    assert len(ref) == 500
    assert_same_tables(ref.to_arrow(), compiled.to_arrow())
    # only spans with events (the failed chats' exception events) take the general path
    assert 0 < compiled.general_calls < 0.1 * len(ref)

    # a flattened output list with no gen_ai.output.messages fills output_messages: general path
    message = _message(
        [
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.input.messages", '[{"role":"user","content":"hi"}]'),
            ("llm.output_messages.0.message.role", "assistant"),
            ("llm.output_messages.0.message.content", "hello"),
        ]
    )
    ref2, compiled2 = (
        SpanBuilder(pricing, offloader.offload),
        _CountingGeneral(pricing, offloader.offload, 300),
    )
    assert compiled2.add(message, "p", 1) == ref2.add(message, "p", 1) == 1
    assert compiled2.general_calls == 1
    table = compiled2.to_arrow()
    assert "hello" in table.column("output_messages")[0].as_py()
    assert_same_tables(ref2.to_arrow(), table)
