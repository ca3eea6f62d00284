"""Estimators against a known population: coverage of the 95% interval, bias of the naive mean."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spanline.scorer.judging.estimate import Judged, korn_graubard, post_stratified, t_ppf, wilson

# skewed strata, rare failures in bulk, a failure-heavy tail judged at probability 1
STRATA = {
    # name: (N_h, pass rate, inclusion probability)
    "bulk:chat|m1|prod": (9_000, 0.97, 0.03),
    "bulk:chat|m2|prod": (5_000, 0.94, 0.04),
    "bulk:search|m1|prod": (3_000, 0.99, 0.03),
    "bulk:agent|m2|prod": (1_500, 0.90, 0.05),
    "bulk:agent|m1|staging": (800, 0.96, 0.06),
    "bulk:rare|m3|prod": (200, 0.85, 0.15),
    "tail:error": (500, 0.45, 1.0),
}
NONRESPONSE = 0.02  # judge errors, missing at random within a stratum
REPS = 300


def _population(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {h: (rng.random(n) < p).astype(float) for h, (n, p, _) in STRATA.items()}


def test_interval_covers_truth_and_weighting_removes_the_naive_bias() -> None:
    rng = np.random.default_rng(20261206)
    population = _population(rng)
    truth = float(np.concatenate(list(population.values())).mean())
    sizes = {h: n for h, (n, _, _) in STRATA.items()}
    covered = 0
    estimates: list[float] = []
    naive: list[float] = []
    widths: list[float] = []
    for _ in range(REPS):
        judged: list[Judged] = []
        for h, (_, _, pi) in STRATA.items():
            y = population[h]
            drawn = (rng.random(len(y)) < pi) & (rng.random(len(y)) >= NONRESPONSE)
            judged += [Judged(h, float(v), pi) for v in y[drawn]]
        est = post_stratified(sizes, judged)
        assert est.estimate is not None and est.ci_low is not None and est.ci_high is not None
        covered += est.ci_low <= truth <= est.ci_high
        estimates.append(est.estimate)
        widths.append(est.ci_high - est.ci_low)
        naive.append(sum(j.value for j in judged) / len(judged))
    coverage = covered / REPS
    bias = float(np.mean(estimates)) - truth
    naive_bias = float(np.mean(naive)) - truth
    sd = float(np.std(estimates))
    print(
        f"truth={truth:.4f} coverage={coverage:.3f} bias={bias:+.4f} sd={sd:.4f} "
        f"mean_width={np.mean(widths):.4f} naive_bias={naive_bias:+.4f}"
    )
    assert coverage >= 0.93
    assert abs(bias) < 3 * sd / math.sqrt(REPS) + 0.002  # unbiased within simulation noise
    assert naive_bias < -0.15  # the unweighted judged mean is dragged down by the tail


def test_population_shares_come_from_sampling_records_not_from_the_judged() -> None:
    # two strata judged 10 each: equal in the sample, 99:1 in the population
    judged = [Judged("bulk:a", 1.0, 0.001) for _ in range(10)] + [Judged("tail:error", 0.0, 1.0)] * 10
    est = post_stratified({"bulk:a": 9_900, "tail:error": 100}, judged)
    assert est.estimate == pytest.approx(0.99)
    assert est.population == 10_000 and est.n_judged == 20


def test_small_strata_are_pooled_and_flagged() -> None:
    judged = [Judged("bulk:a", float(i % 10 != 0), 0.05) for i in range(200)]
    judged += [Judged("bulk:b", 0.0, 0.05)]  # one judged trace: pooled
    est = post_stratified({"bulk:a": 4_000, "bulk:b": 20, "bulk:c": 500}, judged)
    assert est.pooled_strata == 2 and est.low_precision
    assert any("pooled" in r for r in est.reasons)
    assert est.uncovered_share == 0.0  # b and c pooled into one group, which has b's one result
    none = post_stratified({"bulk:a": 10}, [])
    assert none.estimate is None and none.low_precision and none.reasons == ["no judged trace"]


def test_strata_never_judged_are_reported_as_uncovered() -> None:
    judged = [Judged("bulk:a", 1.0, 0.5) for _ in range(50)] + [Judged("bulk:a", 0.0, 0.5)] * 50
    est = post_stratified({"bulk:a": 200, "tail:slow": 0, "bulk:z": 0}, judged)
    assert est.uncovered_share == 0.0 and est.estimate == pytest.approx(0.5)
    est = post_stratified({"bulk:a": 200}, judged, min_stratum=2)
    assert est.strata == 1


def test_mean_of_a_bounded_score_uses_a_t_interval() -> None:
    rng = np.random.default_rng(7)
    judged = [Judged("bulk:a", float(v), 0.1) for v in rng.normal(3.0, 1.0, 100)]
    est = post_stratified({"bulk:a": 1_000}, judged, proportion=False)
    assert est.method.startswith("post-stratified mean")
    assert est.ci_low is not None and est.ci_high is not None
    values = np.array([j.value for j in judged])
    half = t_ppf(0.975, 99) * values.std(ddof=1) * math.sqrt(1 - 100 / 1_000) / math.sqrt(100)
    assert est.estimate == pytest.approx(values.mean())
    assert est.ci_low == pytest.approx(values.mean() - half)
    assert est.ci_high == pytest.approx(values.mean() + half)


def test_interval_functions_match_reference_values() -> None:
    # scipy.stats.beta.ppf(0.025, 5, 96) = 0.016431..., t.ppf(0.975, 10) = 2.228139
    assert korn_graubard(0.05, 100)[0] == pytest.approx(0.0164319, abs=1e-6)
    assert korn_graubard(0.05, 100)[1] == pytest.approx(0.1128349, abs=1e-6)
    assert t_ppf(0.975, 10) == pytest.approx(2.228139, abs=1e-5)
    low, high = wilson(0.5, 100)
    assert low == pytest.approx(0.40383, abs=1e-4) and high == pytest.approx(0.59617, abs=1e-4)
    zero_low, zero_high = korn_graubard(0.0, 50)
    assert zero_low == 0.0 and zero_high == pytest.approx(0.071121, abs=1e-5)
