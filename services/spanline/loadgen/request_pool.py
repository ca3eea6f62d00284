"""Pre-serialized export requests, re-issued with fresh trace ids.

Building GenAI spans in Python protobuf runs at roughly 15k spans/s, below what ingest
must absorb, so a load generator that built as it sent would measure itself. The pool
builds a few requests once and, per send, copies one and overwrites its 16-byte trace
ids in place. Each request holds whole traces (see :mod:`genai_traces`), so a fresh id
per trace keeps every trace intact and every (trace_id, span_id) unique, which matters
because sinks deduplicate on it.
"""

from __future__ import annotations

import os

from spanline.loadgen.genai_traces import build_trace_set


class _Template:
    """One serialized request plus where each of its trace ids sits in the bytes."""

    __slots__ = ("data", "offsets_by_trace", "spans")

    def __init__(self, data: bytes, trace_ids: list[bytes], spans: int) -> None:
        self.data = data
        self.spans = spans
        self.offsets_by_trace: list[list[int]] = []
        for tid in trace_ids:
            offsets: list[int] = []
            pos = data.find(tid)
            while pos >= 0:
                offsets.append(pos)
                pos = data.find(tid, pos + 16)
            if offsets:
                self.offsets_by_trace.append(offsets)

    def fresh(self) -> bytes:
        buf = bytearray(self.data)
        new_ids = os.urandom(16 * len(self.offsets_by_trace))
        for i, offsets in enumerate(self.offsets_by_trace):
            tid = new_ids[16 * i : 16 * i + 16]
            for pos in offsets:
                buf[pos : pos + 16] = tid
        return bytes(buf)


class RequestPool:
    """Serialized ``ExportTraceServiceRequest`` bytes of ``batch`` spans, endlessly.

    ``profile`` is a :data:`spanline.loadgen.genai_traces.PROFILES` name ("heavy": 5-span
    runs carrying OTel GenAI and OpenInference attributes, ~2.5 KB a span)."""

    def __init__(
        self,
        batch: int,
        pool_size: int = 32,
        seed: int = 0,
        plant_pii: bool = False,
        start_time_ns: int | None = None,
        profile: str = "default",
    ) -> None:
        if batch < 1 or pool_size < 1:
            raise ValueError("batch and pool_size must be >= 1")
        self.batch = batch
        self._seed = seed
        self._plant_pii = plant_pii
        self._start_time_ns = start_time_ns
        self._profile = profile
        self._templates = self._build(batch * pool_size, batch, seed)
        self._partial: dict[int, _Template] = {}
        self._next = 0

    def _build(self, total: int, batch: int, seed: int) -> list[_Template]:
        trace_set = build_trace_set(total, batch, seed, self._plant_pii, self._start_time_ns, self._profile)
        templates = []
        for request in trace_set.requests:
            ids = list(
                dict.fromkeys(
                    span.trace_id
                    for rs in request.resource_spans
                    for ss in rs.scope_spans
                    for span in ss.spans
                )
            )
            spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
            templates.append(_Template(request.SerializeToString(), ids, spans))
        return templates

    def next(self, spans: int | None = None) -> tuple[bytes, int]:
        """Bytes of the next request with fresh trace ids and its span count.

        ``spans`` below ``batch`` gives a smaller request (the tail of a bounded run).
        """
        if spans is not None and spans < self.batch:
            if spans < 1:
                raise ValueError("spans must be >= 1")
            template = self._partial.get(spans)
            if template is None:
                template = self._build(spans, spans, self._seed + 1)[0]
                self._partial[spans] = template
        else:
            template = self._templates[self._next]
            self._next = (self._next + 1) % len(self._templates)
        return template.fresh(), template.spans
