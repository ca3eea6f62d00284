"""Trace windows with a fake clock: completion rules, bounds, late fragments, watermark."""

from __future__ import annotations

import asyncio
import os
import random

from spanline.core.kafka import InMessage
from spanline.scorer.config import ScorerSettings
from spanline.scorer.facts import FactsReader, facts_by_trace
from spanline.scorer.service import ScorerStrategy, message_traces
from spanline.scorer.windows import TraceWindows
from spanline.settings import load_settings
from spanline.spans.pricing import PricingTable
from spanline.spans.score_records import unpack_scores
from tests.support.scorer_traces import chat_attrs, message, span, trace_spans

T = "t.redacted"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _windows(*, keep_messages: bool = False, **kw: object) -> tuple[TraceWindows, Clock]:
    clock = Clock()
    base = {"quiet_after_root_s": 30, "quiet_no_root_s": 180, "max_trace_age_s": 900}
    return TraceWindows(ScorerSettings(**{**base, **kw}), clock, keep_messages=keep_messages), clock


READER = FactsReader(PricingTable.load(None), "auto", ScorerSettings().heuristics_for)


def _add(w: TraceWindows, msg: InMessage) -> list[object]:
    """As the strategy does: the message's span facts go to the window of their trace."""
    is_log, traces = message_traces(msg)
    rows = READER.add(msg.value, "shop", 1) if not is_log else 0
    trace_hex, facts = READER.take()
    by_trace = facts_by_trace(trace_hex, facts, 0, rows)
    out: list[object] = []
    for tid, root in traces.items():
        spans = by_trace.get(tid.hex())
        out += w.add(msg, ("shop", tid), is_log=is_log, has_root=root, received_ns=1, spans=spans)
    return out


def test_root_last_closes_complete_after_quiet_only() -> None:
    w, clock = _windows()
    tid = os.urandom(16)
    spans = trace_spans(tid, 3)
    for i, s in enumerate(spans):
        _add(w, message(tid, [s], offset=i))
        clock.now += 1
    assert w.due() == []
    clock.now += 28.5  # 29.5 s quiet
    assert w.due() == []
    clock.now += 1
    closed = w.due()
    assert [c.reason for c in closed] == ["complete"]
    assert len(closed[0].trace.spans) == 4 and not closed[0].trace.span_messages
    assert len(w) == 0


def test_no_root_and_max_age() -> None:
    w, clock = _windows()
    a, b = os.urandom(16), os.urandom(16)
    _add(w, message(a, [span(a, parent=os.urandom(8))], offset=0))
    clock.now += 179
    assert w.due() == []
    clock.now += 2
    assert [c.reason for c in w.due()] == ["no_root"]
    # a trace that never goes quiet closes at its maximum age
    for i in range(100):
        _add(w, message(b, [span(b, parent=os.urandom(8))], offset=10 + i))
        clock.now += 10
        closed = w.due()
        if closed:
            assert [c.reason for c in closed] == ["max_age"]
            assert 890 <= clock.now - 1181 <= 910
            return
    raise AssertionError("never closed by max age")


def test_interleaved_traces_across_partitions_and_batches_watermark() -> None:
    """Spans of many traces interleaved over 3 partitions: each trace closes whole; the
    watermark of a partition is the first offset of its oldest open trace."""
    w, clock = _windows()
    rng = random.Random(7)
    traces = {os.urandom(16): rng.randrange(3) for _ in range(30)}
    pending = [(tid, s) for tid in traces for s in trace_spans(tid, 4)]
    # keep each trace's own order (root last) but interleave traces
    order: dict[bytes, list[object]] = {tid: [] for tid in traces}
    for tid, s in pending:
        order[tid].append(s)
    offsets = {0: 0, 1: 0, 2: 0}
    first: dict[bytes, int] = {}
    while any(order.values()):
        tid = rng.choice([t for t, v in order.items() if v])
        p = traces[tid]
        s = order[tid].pop(0)
        first.setdefault(tid, offsets[p])
        _add(w, message(tid, [s], partition=p, offset=offsets[p], topic=T))  # type: ignore[list-item]
        offsets[p] += 1
        clock.now += 0.01
    held = w.held_offsets()
    for p in range(3):
        mine = [first[t] for t, q in traces.items() if q == p]
        if mine:
            assert held[(T, p)] == min(mine)
    clock.now += 31
    closed = w.due()
    assert sorted(c.trace.trace_id for c in closed) == sorted(traces)
    assert all(c.reason == "complete" and len(c.trace.spans) == 5 for c in closed)
    assert w.held_offsets() == {}


def test_watermark_reaches_back_over_a_decided_trace_past_it() -> None:
    w, clock = _windows(quiet_after_root_s=5)
    a, b = os.urandom(16), os.urandom(16)
    sa, sb = trace_spans(a, 1), trace_spans(b, 1)
    _add(w, message(a, [sa[0]], offset=0, topic=T))
    _add(w, message(b, [sb[0]], offset=1, topic=T))
    _add(w, message(a, [sa[1]], offset=2, topic=T))  # a's root, after b began
    clock.now += 3
    _add(w, message(b, [span(b, parent=sb[1].span_id)], offset=3, topic=T))
    clock.now += 3
    assert [c.trace.trace_id for c in w.due()] == [a]
    # b is open from offset 1, but a (decided) has a message at 2: a replay from 1 would
    # see a fragment of a, so the watermark stays at a's first offset
    assert w.held_offsets() == {(T, 0): 0}


def test_eviction_under_count_and_byte_bounds() -> None:
    w, _ = _windows(max_open_traces=3)
    ids = [os.urandom(16) for _ in range(5)]
    closed = []
    for i, tid in enumerate(ids):
        closed += _add(w, message(tid, [span(tid, parent=os.urandom(8))], offset=i))
    assert [c.trace.trace_id for c in closed] == ids[:2]  # oldest first
    assert {c.reason for c in closed} == {"evicted"}
    assert len(w) == 3
    big = "x" * 3000
    # the byte bound counts what is held: here the messages themselves (kept for a judge)
    w2, _ = _windows(max_open_bytes=8 * 1024, keep_messages=True)
    closed = []
    for i, tid in enumerate(ids):
        s = span(tid, parent=os.urandom(8), attrs={"payload": big})
        closed += _add(w2, message(tid, [s], offset=i))
    assert closed and all(c.reason == "evicted" for c in closed)
    assert w2.open_bytes <= 8 * 1024


def test_20mb_trace_closes_oversized_not_buffered() -> None:
    """With the messages kept (the judge on), a 20 MB trace is not held whole."""
    w, _ = _windows(keep_messages=True)
    tid = os.urandom(16)
    chunk = "y" * (1024 * 1024)
    closed = []
    for i in range(20):
        s = span(tid, parent=os.urandom(8), attrs=chat_attrs(output=chunk))
        closed += _add(w, message(tid, [s], offset=i))
        assert w.open_bytes <= 8 * 1024 * 1024 + 2 * 1024 * 1024
    assert closed[0].reason == "oversized"
    assert w.open_bytes < 8 * 1024 * 1024
    # what came after the close is a late fragment, never the trace again
    assert all(c.trace.late_fragment for c in closed[1:])


async def test_late_fragment_never_judged_twice() -> None:
    calls: list[bytes] = []

    class Judge:
        async def evaluate(self, trace: object) -> list[object]:
            calls.append(trace.trace_id)  # type: ignore[attr-defined]
            return []

        async def close(self) -> None:
            return None

    settings = load_settings(None, topics={"prefix": "t"}, scorer={"quiet_after_root_s": 5})
    clock = Clock()
    strategy = ScorerStrategy(settings, judge=Judge(), clock=clock)  # type: ignore[arg-type]
    strategy.windows.clock = clock
    tid = os.urandom(16)
    spans = trace_spans(tid, 2)
    out = await strategy.process([message(tid, spans, offset=0)])
    clock.now += 6
    out = await strategy.tick()
    assert out.records
    await asyncio.sleep(0)
    late = await strategy.process([message(tid, [span(tid, parent=spans[-1].span_id)], offset=1)])
    clock.now += 200
    late_out = await strategy.tick()
    for _ in range(3):
        late_out.records.extend((await strategy.tick()).records)
    assert calls == [tid]
    assert late.records == [] and late_out.records
    scores = [s for r in late_out.records for s in unpack_scores(r.value)]
    assert all(s.attributes.get("spanline.trace.late_fragment") == "true" for s in scores)
