"""The pipeline benchmark's bookkeeping: stage timelines, the wall-time split, ratios to the
previous result. The benchmark itself runs under `make bench`, not here."""

from __future__ import annotations

import os

from benchmarks.pipeline_bench import _ratios
from benchmarks.pipeline_observe import Observer, Watched, _cpu_rss, where_time_went


def _observer_with(
    points: list[tuple[float, float]], totals: list[tuple[float, dict[str, float]]]
) -> Observer:
    obs = Observer([Watched("redactor", os.getpid(), None)], "bench")
    s = obs.series["redactor"]
    s.counters["out_redacted"] = points
    s.totals = totals
    s.cpu = [(t, t * 0.5) for t, _ in points]
    return obs


def test_stage_reports_first_and_last_movement_within_the_phase() -> None:
    points = [(9.0, 50.0), (10.0, 50.0), (11.0, 60.0), (12.0, 200.0), (13.0, 200.0), (20.0, 900.0)]
    totals = [(10.0, {"batches": 1.0, "batch_s": 0.5}), (13.0, {"batches": 4.0, "batch_s": 2.0})]
    obs = _observer_with(points, totals)
    stage = obs.stage("redactor", 10.0, 13.0)
    # the count before the phase (50) and after it (900) are not this phase's
    assert stage["out_redacted"] == {"count": 150, "first_s": 1.0, "last_s": 2.0}
    assert stage["totals"] == {"batches": 3.0, "batch_s": 1.5}
    assert obs.cpu_s("redactor", 10.0, 13.0) == 1.5


def test_wall_time_splits_into_cpu_batches_and_outside() -> None:
    stage = {
        "totals": {"batches": 4.0, "batch_records": 2000.0, "batch_s": 3.0, "produce_s": 1.0, "commits": 4.0}
    }
    split = where_time_went(stage, cpu_s=2.0, wall_s=10.0)
    assert split["busy_share"] == 0.2
    assert split["records_per_batch"] == 500.0
    assert split["outside_batches_s"] == 7.0 and split["produce_wait_s"] == 1.0
    assert where_time_went({}, 1.0, 4.0) == {"wall_s": 4.0, "cpu_s": 1.0, "busy_share": 0.25}
    assert where_time_went({}, 1.0, 4.0, cpu_wait_s=2.5)["waiting_for_cpu_s"] == 2.5


def test_cpu_wait_is_read_for_every_thread_of_a_live_process() -> None:
    cpu, rss, waited = _cpu_rss(os.getpid())
    assert cpu > 0 and rss > 0 and waited >= 0.0
    assert _cpu_rss(2**22 + 12345) == (0.0, 0, 0.0)  # no such process: nothing, no error


def test_ratios_compare_only_figures_both_runs_have() -> None:
    now = {"end_to_end_spans_per_s": 6000, "cpu_us_per_span": {"total": 300.0, "writer": 60.0}}
    before = {"when": "x", "end_to_end_spans_per_s": 4000, "cpu_us_per_span": {"total": 200.0}}
    out = _ratios(now, before)
    assert out is not None
    assert out["ratios"] == {"end_to_end_spans_per_s": 1.5, "cpu_us_per_span.total": 1.5}
    assert out["previous_profile"] == "default"
    assert _ratios(now, None) is None
