"""`spanline quality`: weighted population estimates of judge verdicts, from stored scores.

Two aggregate queries on the ``scores`` table (deduplicated by score id):
- population: ``judge_sampling`` records per project and stratum in the window (N_h:
  every trace the judge stage saw, judged or not);
- judged: valid ``llm_judge`` verdicts per project, evaluator, version, stratum, applied
  inclusion probability and value, plus the count of error scores (nonresponse).
The estimate is post-stratified (see :mod:`spanline.scorer.judging.estimate`). The plain
mean of judged verdicts is never printed: tail strata are judged at probability 1 and
would dominate it.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from spanline.query.client import QueryBackend, QueryError
from spanline.scorer.judging.estimate import Estimate, Judged, post_stratified
from spanline.scorer.judging.records import (
    A_IN_DESIGN,
    A_PROBABILITY,
    A_STRATUM,
    SAMPLING_NAME,
)
from spanline.scorer.scores import A_ERROR_TYPE, A_VERSION, KIND_LLM_JUDGE

_WINDOW = re.compile(r"^(\d{1,6})([mhd])$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86_400}
_PROJECT = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_EVALUATOR = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")


def window_seconds(text: str) -> int:
    m = _WINDOW.match(text.strip())
    if not m or int(m.group(1)) == 0:
        raise QueryError(f"--since {text!r}: use a number and m, h or d (30m, 24h, 7d)")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


@dataclass(slots=True)
class QualityRow:
    project: str
    evaluator: str
    version: str
    errors: int
    estimate: Estimate

    def to_dict(self) -> dict[str, Any]:
        e = self.estimate
        judged_or_failed = e.n_judged + self.errors
        return {
            "project": self.project,
            "evaluator": self.evaluator,
            "version": self.version,
            "pass_rate": e.estimate,
            "ci95": [e.ci_low, e.ci_high],
            "std_error": e.std_error,
            "n_eff": e.n_eff,
            "n_judged": e.n_judged,
            "judge_errors": self.errors,
            "judge_error_rate": (self.errors / judged_or_failed) if judged_or_failed else 0.0,
            "population": e.population,
            "strata": e.strata,
            "strata_judged": e.strata_judged,
            "uncovered_share": e.uncovered_share,
            "design_effect": e.design_effect,
            "method": e.method,
            "low_precision": e.low_precision,
            "reasons": e.reasons,
        }


def _filters(since_s: int, project: str | None) -> str:
    where = f"time >= now64(9) - toIntervalSecond({since_s})"
    if project is not None:
        if not _PROJECT.match(project):
            raise QueryError("project id may only hold letters, digits and . _ : -")
        where += f" AND project_id = '{project}'"
    return where


def fetch_quality(
    backend: QueryBackend, *, since_s: int, project: str | None = None, evaluator: str | None = None
) -> list[QualityRow]:
    db = backend.database
    where = _filters(since_s, project)
    population_rows = backend.query(
        f"SELECT project_id, attributes['{A_STRATUM}'] AS stratum, count() AS n "
        f"FROM {db}.scores WHERE name = '{SAMPLING_NAME}' AND {where} "
        "GROUP BY project_id, stratum"
    ).records()
    judged_where = f"evaluator_kind = '{KIND_LLM_JUDGE}' AND {where}"
    if evaluator is not None:
        if not _EVALUATOR.match(evaluator):
            raise QueryError("evaluator names hold lowercase letters, digits, _ and .")
        judged_where += f" AND name = '{evaluator}'"
    judged_rows = backend.query(
        f"SELECT project_id, name, attributes['{A_VERSION}'] AS version, "
        f"attributes['{A_STRATUM}'] AS stratum, "
        f"toFloat64OrZero(attributes['{A_PROBABILITY}']) AS probability, "
        f"score_value AS value, attributes['{A_ERROR_TYPE}'] != '' AS failed, count() AS n "
        f"FROM {db}.scores WHERE {judged_where} AND attributes['{A_IN_DESIGN}'] != 'false' "
        "GROUP BY project_id, name, version, stratum, probability, value, failed "
        "ORDER BY project_id, name, version"
    ).records()
    return estimate_rows(population_rows, judged_rows)


def estimate_rows(
    population_rows: list[dict[str, Any]], judged_rows: list[dict[str, Any]]
) -> list[QualityRow]:
    """Group aggregate rows by (project, evaluator, version) and estimate each group."""
    population: dict[str, dict[str, int]] = defaultdict(dict)
    for r in population_rows:
        population[str(r["project_id"])][str(r["stratum"])] = int(r["n"])
    groups: dict[tuple[str, str, str], list[Judged]] = defaultdict(list)
    errors: dict[tuple[str, str, str], int] = defaultdict(int)
    proportion: dict[tuple[str, str, str], bool] = defaultdict(lambda: True)
    for r in judged_rows:
        key = (str(r["project_id"]), str(r["name"]), str(r["version"]))
        n = int(r["n"])
        if r["failed"] in (1, True, "1", "true"):
            errors[key] += n
            groups.setdefault(key, [])
            continue
        value = float(r["value"])
        if value not in (0.0, 1.0):
            proportion[key] = False
        prob = float(r["probability"])
        if prob <= 0 or math.isnan(value):
            continue
        groups[key].extend([Judged(str(r["stratum"]), value, prob)] * n)
    out = []
    for key in sorted(groups):
        est = post_stratified(population.get(key[0], {}), groups[key], proportion=proportion[key])
        out.append(QualityRow(key[0], key[1], key[2], errors[key], est))
    return out


def _pct(v: float | None, proportion: bool = True) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}%" if proportion else f"{v:.3f}"


def render_quality(rows: list[QualityRow], since: str) -> str:
    from spanline.query.formatting import render_table

    if not rows:
        return f"no judge scores in the last {since}"
    columns = [
        "project", "evaluator", "ver", "pass rate (weighted)", "95% CI", "n_eff", "judged",
        "errors", "traces", "precision",
    ]  # fmt: skip
    cells = []
    for r in rows:
        e = r.estimate
        prop = e.method.startswith("post-stratified proportion") or e.estimate is None
        ci = f"{_pct(e.ci_low, prop)} - {_pct(e.ci_high, prop)}" if e.ci_low is not None else "-"
        cells.append(
            [
                r.project,
                r.evaluator,
                r.version,
                _pct(e.estimate, prop),
                ci,
                f"{e.n_eff:.0f}",
                str(e.n_judged),
                str(r.errors),
                str(e.population),
                "LOW" if e.low_precision else "ok",
            ]
        )
    table = render_table(columns, cells, numeric=[False, False, False, True, True, True, True, True, True])
    notes = [
        f"{r.project}/{r.evaluator}: {'; '.join(r.estimate.reasons)}" for r in rows if r.estimate.reasons
    ]
    footer = (
        f"\nwindow: last {since}. Estimates are post-stratified over every trace the judge stage saw "
        "(sampling records), weighted by 1/inclusion probability; the unweighted judged mean is not "
        "a population figure and is not shown."
    )
    return table + footer + ("\nlow precision:\n  " + "\n  ".join(notes) if notes else "")
