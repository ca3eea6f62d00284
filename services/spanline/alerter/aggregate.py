"""One mergeable summary of the scores of one rule, group and time bucket.

Every aggregate a rule can ask for is derived from the same few sums plus, for quantiles,
a DDSketch (relative-error, mergeable: the partials of several instances and buckets
combine into the exact sketch one instance would have built). Judge scores carry their
sampling weight (1 / inclusion probability), so sums, means and quantiles are
Horvitz-Thompson estimates of the population, while ``n`` still counts judged traces for
``min_samples``.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from ddsketch import DDSketch
from ddsketch.pb.ddsketch_pb2 import DDSketch as DDSketchPb
from ddsketch.pb.proto import DDSketchProto

from spanline.alerter.rules import QUANTILES, compare

SKETCH_RELATIVE_ACCURACY = 0.01


# Quantile inputs are kept as raw (value, weight) pairs until there are this many: most
# partials of one batch hold a handful of scores, and building, serializing and parsing a
# DDSketch for each would cost more than the fold itself.
RAW_LIMIT = 64


class Agg:
    __slots__ = ("h", "mn", "mx", "n", "raw", "s", "sk", "w")

    def __init__(self, with_sketch: bool = False) -> None:
        self.n = 0
        self.w = 0.0
        self.s = 0.0
        self.h = 0.0
        self.mn = math.inf
        self.mx = -math.inf
        self.sk: DDSketch | None = None
        self.raw: list[float] | None = [] if with_sketch else None

    @classmethod
    def of(cls, value: float, weight: float, hit: bool, with_sketch: bool) -> Agg:
        """An aggregate of one sample: ``Agg(with_sketch)`` then :meth:`add`, in one call (fold hot path)."""
        agg = cls.__new__(cls)
        agg.n = 1
        agg.w = weight
        agg.s = 0.0 + value * weight  # as add() sums it (a -0.0 value sums to 0.0)
        agg.h = weight if hit else 0.0
        agg.mn = agg.mx = value
        agg.sk = None
        agg.raw = [value, weight] if with_sketch else None
        return agg

    @classmethod
    def of_wire(cls, data: list[Any], with_sketch: bool) -> Agg:
        """``Agg(with_sketch)`` then :meth:`merge_wire` of `data`, in one call (merge hot path).

        Takes ownership of `data`'s raw list (a freshly decoded partial's).
        """
        agg = cls.__new__(cls)
        agg.n = data[0]
        agg.w = data[1]
        agg.s = data[2]
        agg.h = data[3]
        agg.mn = math.inf if data[4] is None else data[4]
        agg.mx = -math.inf if data[5] is None else data[5]
        agg.sk = None
        raw = data[7] if len(data) > 7 else None
        agg.raw = (raw or []) if with_sketch or data[6] or raw else None
        if data[6]:
            # merged into a sketch of our own accuracy, as merge_wire does (the wire's mapping
            # is rebuilt from rounded parameters)
            agg.sk = DDSketch(SKETCH_RELATIVE_ACCURACY)
            agg.sk.merge(_sketch_from_wire(data[6]))
        if agg.raw is not None and len(agg.raw) > 2 * RAW_LIMIT:
            agg._spill()
        return agg

    def _spill(self) -> None:
        """Move raw pairs into the sketch (created on first need)."""
        if self.sk is None:
            self.sk = DDSketch(SKETCH_RELATIVE_ACCURACY)
        raw = self.raw or []
        add = self.sk.add
        for i in range(0, len(raw), 2):
            add(raw[i], raw[i + 1])
        self.raw = []

    def quantile_sketch(self) -> DDSketch | None:
        if self.raw is None and self.sk is None:
            return None
        if self.raw:
            self._spill()
        return self.sk

    def add(self, value: float, weight: float, hit: bool) -> None:
        self.n += 1
        self.w += weight
        self.s += value * weight
        if hit:
            self.h += weight
        if value < self.mn:
            self.mn = value
        if value > self.mx:
            self.mx = value
        raw = self.raw
        if raw is not None:
            raw.append(value)
            raw.append(weight)
            if len(raw) > 2 * RAW_LIMIT:
                self._spill()

    def merge(self, other: Agg) -> None:
        self.n += other.n
        self.w += other.w
        self.s += other.s
        self.h += other.h
        self.mn = min(self.mn, other.mn)
        self.mx = max(self.mx, other.mx)
        if other.raw is not None or other.sk is not None:
            if self.raw is None:
                self.raw = []
            if other.raw:
                self.raw.extend(other.raw)
            if other.sk is not None:
                if self.sk is None:
                    self.sk = DDSketch(SKETCH_RELATIVE_ACCURACY)
                self.sk.merge(other.sk)
            if len(self.raw) > 2 * RAW_LIMIT:
                self._spill()

    def merge_wire(self, data: list[Any]) -> None:
        """:meth:`merge` of a :meth:`to_wire` list without building an Agg first (hot path)."""
        if len(data) == 8:
            n, w, s, h, mn, mx, sketch, raw = data
        else:  # written before raw samples travelled
            n, w, s, h, mn, mx, sketch = data
            raw = None
        self.n += n
        self.w += w
        self.s += s
        self.h += h
        if mn is not None and mn < self.mn:
            self.mn = mn
        if mx is not None and mx > self.mx:
            self.mx = mx
        if sketch or raw:
            if self.raw is None:
                self.raw = []
            if raw:
                self.raw.extend(raw)
            if sketch:
                if self.sk is None:
                    self.sk = DDSketch(SKETCH_RELATIVE_ACCURACY)
                self.sk.merge(_sketch_from_wire(sketch))
            if len(self.raw) > 2 * RAW_LIMIT:
                self._spill()

    def value(self, aggregate: str) -> float | None:
        """The aggregate, or None when it is undefined (no samples)."""
        if self.n == 0:
            return 0.0 if aggregate in ("sum", "count") else None
        if aggregate == "sum":
            return self.s
        if aggregate == "count":
            return self.w
        if aggregate == "mean":
            return self.s / self.w if self.w else None
        if aggregate == "ratio":
            return self.h / self.w if self.w else None
        if aggregate == "min":
            return self.mn
        if aggregate == "max":
            return self.mx
        q = QUANTILES[aggregate]
        sketch = self.quantile_sketch()
        if sketch is None:
            return None
        got = sketch.get_quantile_value(q)
        return float(got) if got is not None else None

    def to_wire(self) -> list[Any]:
        sketch = None
        if self.sk is not None:
            sketch = base64.b64encode(DDSketchProto.to_proto(self.sk).SerializeToString()).decode("ascii")
        mn = self.mn
        mx = self.mx
        # mn/mx are +-inf only while empty; NaN compares false both ways, stays and reads as null
        return [
            self.n,
            self.w,
            self.s,
            self.h,
            mn if -math.inf < mn < math.inf else None,
            mx if -math.inf < mx < math.inf else None,
            sketch,
            self.raw,
        ]

    def wire_text(self, before: str = "", after: str = "") -> str:
        """``before + json.dumps(self.to_wire()) + after``, formatted directly when every number is finite.

        The fold publishes one of these per alert and time bucket, most of them for a
        single score: building the list and running the JSON encoder over it cost more
        than folding the score did. Finite floats format the same (``repr``) either way;
        anything else (NaN, infinities, a sketch) goes through the encoder. `before` and
        `after` (the rest of a partial entry) are joined in the same step.
        """
        w, s, h, mn, mx, raw = self.w, self.s, self.h, self.mn, self.mx, self.raw
        if self.n == 1 and w == 1.0 and mn - mn == 0 and self.sk is None:
            # one unweighted score (most entries): value, sum, min and max are one number
            v = repr(mn)
            sv = v if mn else repr(s)  # the sum of a -0.0 is 0.0
            hit = "1.0" if h else "0.0"
            if raw is None:
                return f"{before}[1,1.0,{sv},{hit},{v},{v},null,null]{after}"
            if len(raw) == 2:
                return f"{before}[1,1.0,{sv},{hit},{v},{v},null,[{v},1.0]]{after}"
        if self.sk is None and w - w == 0 and s - s == 0 and h - h == 0 and mn - mn == 0 and mx - mx == 0:
            if raw is None:
                return f"{before}[{self.n},{w!r},{s!r},{h!r},{mn!r},{mx!r},null,null]{after}"
            total = sum(raw)
            if total - total == 0:  # every raw number finite (a NaN or infinity makes the sum one)
                return f"{before}[{self.n},{w!r},{s!r},{h!r},{mn!r},{mx!r},null,{raw!r}]{after}"
        return before + json.dumps(self.to_wire(), separators=(",", ":")) + after

    @classmethod
    def from_wire(cls, data: list[Any]) -> Agg:
        agg = cls()
        agg.n, agg.w, agg.s, agg.h = int(data[0]), float(data[1]), float(data[2]), float(data[3])
        agg.mn = math.inf if data[4] is None else float(data[4])
        agg.mx = -math.inf if data[5] is None else float(data[5])
        if data[6]:
            agg.sk = _sketch_from_wire(data[6])
        if len(data) > 7 and data[7] is not None:
            agg.raw = [float(x) for x in data[7]]
        return agg


def _sketch_from_wire(text: str) -> DDSketch:
    pb = DDSketchPb()
    pb.ParseFromString(base64.b64decode(text))
    sketch: DDSketch = DDSketchProto.from_proto(pb)
    return sketch


def merged(aggs: list[Agg], with_sketch: bool) -> Agg:
    out = Agg(with_sketch=with_sketch)
    for a in aggs:
        out.merge(a)
    return out


def ratio_hit(op: str, bound: float, value: float) -> bool:
    return compare(op, value, bound)
