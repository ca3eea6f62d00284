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
        self.n += data[0]
        self.w += data[1]
        self.s += data[2]
        self.h += data[3]
        if data[4] is not None and data[4] < self.mn:
            self.mn = data[4]
        if data[5] is not None and data[5] > self.mx:
            self.mx = data[5]
        if data[6] or (len(data) > 7 and data[7]):
            self.merge(
                Agg.from_wire([0, 0.0, 0.0, 0.0, None, None, data[6], data[7] if len(data) > 7 else None])
            )

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
        return [self.n, self.w, self.s, self.h, _finite(self.mn), _finite(self.mx), sketch, self.raw]

    @classmethod
    def from_wire(cls, data: list[Any]) -> Agg:
        agg = cls()
        agg.n, agg.w, agg.s, agg.h = int(data[0]), float(data[1]), float(data[2]), float(data[3])
        agg.mn = math.inf if data[4] is None else float(data[4])
        agg.mx = -math.inf if data[5] is None else float(data[5])
        if data[6]:
            pb = DDSketchPb()
            pb.ParseFromString(base64.b64decode(data[6]))
            agg.sk = DDSketchProto.from_proto(pb)
        if len(data) > 7 and data[7] is not None:
            agg.raw = [float(x) for x in data[7]]
        return agg


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def merged(aggs: list[Agg], with_sketch: bool) -> Agg:
    out = Agg(with_sketch=with_sketch)
    for a in aggs:
        out.merge(a)
    return out


def ratio_hit(op: str, bound: float, value: float) -> bool:
    return compare(op, value, bound)
