"""Population estimates from a judged sample with known inclusion probabilities.

The judged traces are not a simple random sample: tail strata are judged at probability
1 and bulk strata at a few percent, so the plain mean of judged verdicts over-represents
errors and slow traces (in simulation it is off by about a third). The estimate here is
post-stratified: within each stratum the Hajek (1/pi weighted) mean, combined with the
stratum's share of the population N_h/N, which comes from the sampling records (every
trace, judged or not). Variance: sum_h W_h^2 (1 - f_h) s_h^2 / n_h. A proportion gets a
Wilson interval on the effective sample size, or Korn-Graubard (Clopper-Pearson on the
effective size) when a stratum has fewer than 30 judged traces, where Wilson under-covers.
Judge failures are nonresponse: post-stratification reweights within the stratum, and
their count is reported.

Pure Python (no numpy/scipy at runtime): the incomplete beta function gives the Beta and
Student t quantiles.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

Z95 = 1.959963984540054
SMALL_STRATUM = 30  # below it, Korn-Graubard instead of Wilson
LOW_PRECISION_N_EFF = 100.0


@dataclass(frozen=True, slots=True)
class Judged:
    """One valid judged result: its stratum, value (1 pass / 0 fail, or a score), inclusion prob."""

    stratum: str
    value: float
    probability: float


@dataclass(slots=True)
class Estimate:
    estimate: float | None  # population mean / proportion; None when nothing covers the population
    ci_low: float | None
    ci_high: float | None
    std_error: float | None
    n_eff: float
    n_judged: int
    population: int
    strata: int
    strata_judged: int
    pooled_strata: int
    uncovered_share: float  # population share of strata with no judged trace at all
    method: str
    low_precision: bool
    reasons: list[str] = field(default_factory=list)
    design_effect: float | None = None
    kish_n_eff: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- special functions -------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 3e-14:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(ln_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def beta_ppf(q: float, a: float, b: float) -> float:
    """Quantile of Beta(a, b) by bisection (monotone CDF; 80 halvings reach 1e-24)."""
    lo, hi = 0.0, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2.0
        if betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t (q > 0.5), from I_{df/(df+t^2)}(df/2, 1/2)."""
    if df <= 0 or math.isinf(df):
        return Z95
    lo, hi = 0.0, 1e3
    for _ in range(100):
        mid = (lo + hi) / 2.0
        tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + mid * mid))
        if 1.0 - tail < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


# --- intervals ---------------------------------------------------------------------


def wilson(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    if n <= 0:
        return 0.0, 1.0
    z2 = z * z
    centre = p + z2 / (2 * n)
    half = z * math.sqrt(max(0.0, p * (1 - p) / n + z2 / (4 * n * n)))
    denom = 1 + z2 / n
    return max(0.0, (centre - half) / denom), min(1.0, (centre + half) / denom)


def korn_graubard(p: float, n: float, alpha: float = 0.05) -> tuple[float, float]:
    """Clopper-Pearson on the effective sample size (R ``svyciprop(method="beta")``)."""
    if n <= 0:
        return 0.0, 1.0
    x = p * n
    low = 0.0 if x <= 0 else beta_ppf(alpha / 2, x, n - x + 1)
    high = 1.0 if x >= n else beta_ppf(1 - alpha / 2, x + 1, n - x)
    return low, high


# --- the estimator -----------------------------------------------------------------


@dataclass(slots=True)
class _Group:
    population: int = 0
    values: list[float] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    def mean(self) -> float:
        return sum(w * y for w, y in zip(self.weights, self.values, strict=True)) / sum(self.weights)

    def variance(self, mean: float, fallback: float) -> float:
        if self.n < 2:
            return fallback
        return sum((y - mean) ** 2 for y in self.values) / (self.n - 1)


def _kind(stratum: str) -> str:
    return stratum.split(":", 1)[0]


def post_stratified(
    population: Mapping[str, int],
    judged: Iterable[Judged],
    *,
    proportion: bool = True,
    min_stratum: int = 2,
) -> Estimate:
    """Post-stratified mean (or proportion) with a 95% interval.

    ``population`` holds N_h for every stratum seen in the window (judged or not);
    ``judged`` the valid results. A judged stratum missing from ``population`` (its
    sampling records were not found) gets N_h from its weights, sum(1/pi).
    Strata with fewer than ``min_stratum`` judged traces are pooled with the others of
    their kind (tail / bulk), then all pooled strata together if still too few; a pooled
    remainder with no judged trace leaves its population share uncovered (reported).
    """
    by_stratum: dict[str, _Group] = defaultdict(_Group)
    for stratum, n_h in population.items():
        if n_h > 0:
            by_stratum[stratum].population += int(n_h)
    for j in judged:
        if j.probability <= 0 or math.isnan(j.value):
            continue
        g = by_stratum[j.stratum]
        g.values.append(j.value)
        g.weights.append(1.0 / j.probability)
    for stratum, g in by_stratum.items():
        if stratum not in population or population[stratum] <= 0:
            g.population = max(g.n, round(sum(g.weights)))

    groups: list[_Group] = []
    pooled_by_kind: dict[str, _Group] = {}
    pooled_strata = 0
    for stratum, g in sorted(by_stratum.items()):
        if g.n >= min_stratum:
            groups.append(g)
            continue
        pooled_strata += 1
        pool = pooled_by_kind.setdefault(_kind(stratum), _Group())
        pool.population += g.population
        pool.values += g.values
        pool.weights += g.weights
    leftovers = _Group()
    for pool in pooled_by_kind.values():
        if pool.n >= min_stratum:
            groups.append(pool)
        else:
            leftovers.population += pool.population
            leftovers.values += pool.values
            leftovers.weights += pool.weights
    uncovered = 0
    if leftovers.population:
        if leftovers.n > 0:
            groups.append(leftovers)
        else:
            uncovered = leftovers.population

    total_population = sum(g.population for g in by_stratum.values())
    covered = sum(g.population for g in groups)
    n_judged = sum(g.n for g in groups)
    all_weights = [w for g in groups for w in g.weights]
    kish = (sum(all_weights) ** 2 / sum(w * w for w in all_weights)) if all_weights else 0.0
    reasons: list[str] = []
    if covered == 0 or n_judged == 0:
        return Estimate(
            None, None, None, None, 0.0, 0, total_population, len(by_stratum), 0, pooled_strata,
            1.0 if total_population else 0.0, "none", True, ["no judged trace"], None, 0.0,
        )  # fmt: skip

    fallback_var = 0.25
    if not proportion:
        values = [y for g in groups for y in g.values]
        fallback_var = (max(values) - min(values)) ** 2 / 4 if len(values) > 1 else 0.0
    estimate = 0.0
    variance = 0.0
    df = 0
    for g in groups:
        w_g = g.population / covered
        mean = g.mean()
        estimate += w_g * mean
        f_g = min(1.0, g.n / g.population) if g.population else 1.0
        variance += w_g * w_g * (1.0 - f_g) * g.variance(mean, fallback_var) / g.n
        df += max(0, g.n - 1)
    se = math.sqrt(max(0.0, variance))
    min_n = min(g.n for g in groups)

    if proportion:
        p = min(1.0, max(0.0, estimate))
        n_eff = p * (1 - p) / variance if variance > 0 and 0 < p < 1 else float(n_judged)
        n_eff = min(n_eff, float(covered))
        if min_n < SMALL_STRATUM:
            low, high = korn_graubard(p, n_eff)
            method = "post-stratified proportion, Korn-Graubard"
        else:
            low, high = wilson(p, n_eff)
            method = "post-stratified proportion, Wilson on n_eff"
    else:
        t = t_ppf(0.975, df) if df > 0 else Z95
        low, high = estimate - t * se, estimate + t * se
        n_eff = float(n_judged) if variance <= 0 else min(float(covered), _unit_variance(groups) / variance)
        method = "post-stratified mean, t interval"
    if n_eff < LOW_PRECISION_N_EFF:
        reasons.append(f"effective sample size {n_eff:.0f} < {LOW_PRECISION_N_EFF:.0f}")
    if pooled_strata:
        reasons.append(f"{pooled_strata} strata with < {min_stratum} judged traces pooled")
    if uncovered:
        reasons.append(f"{uncovered / total_population:.1%} of the population in strata never judged")
    return Estimate(
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        std_error=se,
        n_eff=n_eff,
        n_judged=n_judged,
        population=total_population,
        strata=len(by_stratum),
        strata_judged=sum(1 for g in by_stratum.values() if g.n),
        pooled_strata=pooled_strata,
        uncovered_share=uncovered / total_population if total_population else 0.0,
        method=method,
        low_precision=bool(reasons),
        reasons=reasons,
        design_effect=(n_judged / n_eff) if n_eff > 0 else None,
        kish_n_eff=kish,
    )


def _unit_variance(groups: list[_Group]) -> float:
    """Population variance of one unit, pooled over groups (for a mean's n_eff)."""
    values = [y for g in groups for y in g.values]
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return sum((y - mean) ** 2 for y in values) / (len(values) - 1)
