"""Trace windows: which traces are open, when each one closes, and what must not be committed.

One Kafka partition owns every span of a trace (the key is the trace id), so a window is
per partition and needs no merge across consumers. A window holds, per span, the facts the
heuristics read (:class:`~spanline.scorer.facts.SpanFacts`, made when the message arrives)
and, only when the judge needs content (``keep_messages``), the messages as they arrived.
The byte bounds count what is held: :data:`~spanline.scorer.facts.SPAN_FACTS_BYTES` per span
and :data:`TRACE_OVERHEAD` per trace, plus each kept message's bytes.

Rules (settings ``scorer.*``; processing time, never span timestamps, which skew):
- ``complete``: a root span arrived and no message came for ``quiet_after_root_s``;
- ``no_root``: no root and no message for ``quiet_no_root_s``;
- ``max_age``: ``max_trace_age_s`` after the first message, whatever else holds;
- ``evicted``: the oldest open trace, when the consumer holds more than ``max_open_traces``
  traces or ``max_open_bytes`` bytes;
- ``oversized``: a trace over ``max_trace_bytes`` closes at once with what it has;
- ``revoked``: the consumer gives its partitions up while the trace is open. On a
  rebalance the window is dropped, never scored here (the new owner replays it from the
  committed watermark); only a stop with ``close_open_on_stop`` (``spanline up``, whose
  in-memory broker would lose it) scores it with this reason.

A decided trace id stays in a bounded decision cache; a message for it opens a *late
fragment* window (closed and scored by the same rules, on its own spans only).

The commit watermark of a partition is the first offset of its oldest open trace (open
traces are kept in arrival order, so that is the first entry), extended back over every
decided trace whose offsets reach past it: a replay then always starts at the first
message of each trace it touches, so a trace decided before a crash is rebuilt whole
(same score ids, same values) and never scored from a fragment as if it were complete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from spanline.core.kafka import InMessage, Partition
from spanline.scorer.config import ScorerSettings
from spanline.scorer.facts import SPAN_FACTS_BYTES, SpanFacts
from spanline.scorer.trace import CloseReason

TraceKey = tuple[str, bytes]
"""(project id, trace id)."""

MESSAGE_OVERHEAD = 128
"""Bytes counted per kept message on top of its value (object headers, list slot)."""

TRACE_OVERHEAD = 640
"""Bytes counted per open trace: its record, key, index entries and lists (tracemalloc)."""


@dataclass(slots=True)
class OpenTrace:
    project_id: str
    trace_id: bytes
    partition: Partition
    first_offset: int
    last_offset: int
    first_arrival: float
    last_arrival: float
    received_ns: int
    late_fragment: bool
    root_seen: bool = False
    size: int = 0
    spans: list[SpanFacts] = field(default_factory=list)
    # (time, 0..1) of log events; the messages as consumed, kept only for the judge
    # (``TraceWindows.keep_messages``). Empty tuples until used: most traces never need them
    feedback_logs: list[tuple[int, float]] | tuple[()] = ()
    span_messages: list[InMessage] | tuple[()] = ()
    log_messages: list[InMessage] | tuple[()] = ()


@dataclass(slots=True)
class ClosedTrace:
    trace: OpenTrace
    reason: CloseReason


class TraceWindows:
    """Open traces of every partition this consumer owns, with their bounds."""

    def __init__(
        self, settings: ScorerSettings, clock: Callable[[], float], *, keep_messages: bool = False
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.keep_messages = keep_messages
        # all open traces in arrival order (eviction and max age look at the oldest first)
        self._open: dict[tuple[Partition, TraceKey], OpenTrace] = {}
        # per partition, in arrival order too: the first entry gives the commit watermark
        self._by_partition: dict[Partition, dict[TraceKey, OpenTrace]] = {}
        # decided traces: (partition, key) -> None, insertion order = age (FIFO bound)
        self._decided: dict[tuple[Partition, TraceKey], None] = {}
        # per partition: (first, last) offsets of decided traces that may still reach past
        # the watermark (pruned once their last offset is below it)
        self._spans_of_decided: dict[Partition, list[tuple[int, int]]] = {}
        self._partitions: dict[Partition, Partition] = {}
        self.open_bytes = 0
        self.late_messages = 0

    def __len__(self) -> int:
        return len(self._open)

    def add(
        self,
        msg: InMessage,
        key: TraceKey,
        *,
        is_log: bool,
        has_root: bool,
        received_ns: int,
        spans: list[SpanFacts] | None = None,
        feedback: list[tuple[int, float]] | None = None,
    ) -> list[ClosedTrace]:
        """Put one message (or its part for one trace: the facts of its spans, the feedback
        of its log events) in its window; returns traces the bounds closed because of it
        (oversized, evicted)."""
        now = self.clock()
        # one tuple per partition, shared by its traces' records and keys
        partition = self._partitions.setdefault((msg.topic, msg.partition), (msg.topic, msg.partition))
        slot = (partition, key)
        trace = self._open.get(slot)
        size = 0
        if trace is None:
            late = slot in self._decided
            trace = OpenTrace(key[0], key[1], partition, msg.offset, msg.offset, now, now, received_ns, late)
            self._open[slot] = trace
            self._by_partition.setdefault(partition, {})[key] = trace
            size = TRACE_OVERHEAD
        if trace.late_fragment:
            self.late_messages += 1
        trace.last_arrival = now
        trace.last_offset = msg.offset
        trace.root_seen = trace.root_seen or has_root
        if spans:
            trace.spans.extend(spans)
            size += len(spans) * SPAN_FACTS_BYTES
        if feedback:
            if isinstance(trace.feedback_logs, tuple):
                trace.feedback_logs = []
            trace.feedback_logs.extend(feedback)
            size += len(feedback) * 64
        if self.keep_messages:
            if is_log:
                if isinstance(trace.log_messages, tuple):
                    trace.log_messages = []
                trace.log_messages.append(msg)
            else:
                if isinstance(trace.span_messages, tuple):
                    trace.span_messages = []
                trace.span_messages.append(msg)
            size += len(msg.value) + MESSAGE_OVERHEAD
        trace.size += size
        self.open_bytes += size
        closed: list[ClosedTrace] = []
        if trace.size > self.settings.max_trace_bytes:
            closed.append(self._close(slot, "oversized"))
        s = self.settings
        while self._open and (len(self._open) > s.max_open_traces or self.open_bytes > s.max_open_bytes):
            closed.append(self._close(next(iter(self._open)), "evicted"))
        return closed

    def due(self) -> list[ClosedTrace]:
        """Traces whose completion rule or maximum age has come."""
        now = self.clock()
        s = self.settings
        closed: list[ClosedTrace] = []
        oldest_allowed = now - s.max_trace_age_s
        while self._open:
            slot, trace = next(iter(self._open.items()))
            if trace.first_arrival > oldest_allowed:
                break
            closed.append(self._close(slot, "max_age"))
        quiet_root = now - s.quiet_after_root_s
        quiet_no_root = now - s.quiet_no_root_s
        ready = [
            slot
            for slot, t in self._open.items()
            if t.last_arrival <= (quiet_root if t.root_seen else quiet_no_root)
        ]
        for slot in ready:
            closed.append(self._close(slot, "complete" if self._open[slot].root_seen else "no_root"))
        return closed

    def held_offsets(self) -> dict[Partition, int]:
        """Per partition holding open traces: the offset a replay must start from.

        The oldest open trace's first offset, moved back to the first offset of any decided
        trace whose last offset reaches that far (transitively). One pass over the decided
        spans by descending last offset finds it, since the watermark only moves down while
        scanning. The watermark never decreases between calls (a trace decided later was
        open, so it was already counted), which is why spans below it can be pruned.
        """
        out: dict[Partition, int] = {}
        for p, traces in self._by_partition.items():
            if not traces:
                continue
            mark = next(iter(traces.values())).first_offset
            decided = self._spans_of_decided.get(p)
            if decided:
                decided.sort(key=lambda fl: fl[1], reverse=True)
                for first, last in decided:
                    if last < mark:
                        break
                    mark = min(mark, first)
                self._spans_of_decided[p] = [fl for fl in decided if fl[1] >= mark]
            out[p] = mark
        return out

    def close_all(self, reason: CloseReason) -> list[ClosedTrace]:
        """Close every open trace now (a stop that must not leave them unscored)."""
        return [self._close(slot, reason) for slot in list(self._open)]

    def drop(self, partitions: Iterable[Partition]) -> list[OpenTrace]:
        """Forget the windows and decisions of partitions this consumer no longer owns."""
        gone = set(partitions)
        dropped: list[OpenTrace] = []
        for p in gone:
            traces = self._by_partition.pop(p, {})
            for key, trace in traces.items():
                del self._open[(p, key)]
                self.open_bytes -= trace.size
                dropped.append(trace)
        if gone:
            self._decided = {slot: None for slot in self._decided if slot[0] not in gone}
            for p in gone:
                self._spans_of_decided.pop(p, None)
        return dropped

    def _close(self, slot: tuple[Partition, TraceKey], reason: CloseReason) -> ClosedTrace:
        trace = self._open.pop(slot)
        partition, key = slot
        traces = self._by_partition[partition]
        del traces[key]
        if not traces:
            del self._by_partition[partition]
        self.open_bytes -= trace.size
        decided = self._decided
        decided.pop(slot, None)
        decided[slot] = None
        if len(decided) > self.settings.decision_cache_size:
            del decided[next(iter(decided))]
        if traces:
            # only while something of the partition is open can a replay reach this trace
            self._spans_of_decided.setdefault(partition, []).append((trace.first_offset, trace.last_offset))
        else:
            self._spans_of_decided.pop(partition, None)
        return ClosedTrace(trace, reason)
