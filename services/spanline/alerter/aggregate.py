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


class Agg:
    __slots__ = ("h", "mn", "mx", "n", "s", "sk", "w")

    def __init__(self, with_sketch: bool = False) -> None:
        self.n = 0
        self.w = 0.0
        self.s = 0.0
        self.h = 0.0
        self.mn = math.inf
        self.mx = -math.inf
        self.sk: DDSketch | None = DDSketch(SKETCH_RELATIVE_ACCURACY) if with_sketch else None

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
        if self.sk is not None:
            self.sk.add(value, weight)

    def merge(self, other: Agg) -> None:
        self.n += other.n
        self.w += other.w
        self.s += other.s
        self.h += other.h
        self.mn = min(self.mn, other.mn)
        self.mx = max(self.mx, other.mx)
        if other.sk is not None:
            if self.sk is None:
                self.sk = DDSketch(SKETCH_RELATIVE_ACCURACY)
            self.sk.merge(other.sk)

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
        if self.sk is None:
            return None
        got = self.sk.get_quantile_value(q)
        return float(got) if got is not None else None

    def to_wire(self) -> list[Any]:
        sketch = None
        if self.sk is not None:
            sketch = base64.b64encode(DDSketchProto.to_proto(self.sk).SerializeToString()).decode("ascii")
        return [self.n, self.w, self.s, self.h, _finite(self.mn), _finite(self.mx), sketch]

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
        return agg


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def merged(aggs: list[Agg], with_sketch: bool) -> Agg:
    out = Agg(with_sketch=False)
    for a in aggs:
        out.merge(a)
    if with_sketch and out.sk is None:
        out.sk = DDSketch(SKETCH_RELATIVE_ACCURACY)
    return out


def ratio_hit(op: str, bound: float, value: float) -> bool:
    return compare(op, value, bound)
