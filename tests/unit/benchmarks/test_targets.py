"""Benchmark results cannot record a target without a verdict on it (issue 16: a recorded
planted-PII target was never evaluated, and missed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.harness import RESULTS, check_targets, verdicts

# Written by its own code with per-check verdicts under "checks" (not by write_result).
_OWN_FORMAT = {"redactor_accuracy.json"}


def test_verdicts_pair_every_target_with_its_verdict() -> None:
    out = verdicts({"rate": (">= 10", True), "rss": ("< 300 MB", False)})
    assert out == {
        "targets": {"rate": ">= 10", "rss": "< 300 MB"},
        "met": {"rate": True, "rss": False},
        "all_met": False,
    }
    check_targets(out)


@pytest.mark.parametrize(
    "data",
    [
        {"targets": {"rate": 10}, "met": {}},
        {"targets": {"rate": 10}, "met": {"throughput": True}},
        {"targets": {"rate": 10}, "met": {"rate": "yes"}},
        {"target_us_per_span": 35.0},
        {"targets": {}, "met": {}, "target_rows_per_s": 1},
    ],
)
def test_a_target_without_a_verdict_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="target"):
        check_targets(data)


@pytest.mark.parametrize(
    "path", sorted(p for p in RESULTS.glob("*.json") if p.name not in _OWN_FORMAT), ids=lambda p: p.name
)
def test_every_committed_result_evaluates_the_targets_it_records(path: Path) -> None:
    check_targets(json.loads(path.read_text(encoding="utf-8")))


def test_ratios_compare_with_the_committed_result_else_the_file_on_disk() -> None:
    import shutil
    import subprocess
    import uuid

    from benchmarks.harness import read_result

    if shutil.which("git") is None or not (RESULTS.parents[1] / ".git").exists():
        pytest.skip("not a git checkout")
    committed = subprocess.run(
        ["git", "show", "HEAD:benchmarks/results/pipeline.json"],
        cwd=RESULTS.parents[1],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    previous = read_result("pipeline")
    assert previous is not None and previous["when"] == json.loads(committed)["when"]
    name = f"test-{uuid.uuid4().hex}"  # never committed: the file on disk is what there is
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"when": "local"}))
    try:
        assert read_result(name) == {"when": "local"}
    finally:
        path.unlink()
    assert read_result(f"test-{uuid.uuid4().hex}") is None
