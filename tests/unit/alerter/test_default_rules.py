"""The shipped default rules, unedited, over a day of scorer-shaped scores (`spanline alerts test`).

The stream uses the scorer's contract: heuristic scores named error, latency_ms,
cost_usd, input_tokens, output_tokens (one each per trace) and llm_judge verdicts with a
pass/fail label and a sampling weight, plus judge error scores (no label). A quiet day
must page nobody; a one-hour incident must fire all five rules and resolve those whose
window recovers.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from spanline.alerter.rules import DEFAULT_RULES_FILE
from spanline.cli.main import main

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
HOUR = 3600.0


def _trace(rng: random.Random, t: float, incident: bool, project: str = "shop") -> list[dict[str, object]]:
    error = 1.0 if rng.random() < (0.3 if incident else 0.01) else 0.0
    latency = rng.gauss(12_000 if incident else 900, 100)
    rows: list[dict[str, object]] = [
        {"time": t, "name": "error", "value": error, "project": project},
        {"time": t, "name": "latency_ms", "value": latency, "project": project},
        {"time": t, "name": "cost_usd", "value": 0.5 if incident else 0.05, "project": project},
        {"time": t, "name": "input_tokens", "value": 20_000 if incident else 800, "project": project},
        {"time": t, "name": "output_tokens", "value": 2_000 if incident else 200, "project": project},
    ]
    passed = rng.random() < (0.4 if incident else 0.95)
    rows.append(
        {
            "time": t,
            "name": "helpfulness",
            "value": 1.0 if passed else 0.0,
            "label": "pass" if passed else "fail",
            "evaluator_kind": "llm_judge",
            "sampling_weight": 2.0,
            "project": project,
        }
    )
    if rng.random() < 0.2:  # a judge error: value 0, no label (never a failure)
        rows.append(
            {
                "time": t,
                "name": "helpfulness",
                "value": 0.0,
                "evaluator_kind": "llm_judge",
                "attributes": {"error.type": "timeout"},
                "project": project,
            }
        )
    return rows


def _write(path: Path, incident_hours: tuple[float, float] | None) -> Path:
    """26 h of steady traffic, four traces a minute (a day for the cost baseline, then 2 h)."""
    rng = random.Random(7)
    rows: list[dict[str, object]] = []
    t = T0
    end = T0 + 26 * HOUR
    while t < end:
        hour = (t - T0) / HOUR
        incident = incident_hours is not None and incident_hours[0] <= hour < incident_hours[1]
        rows += _trace(rng, t, incident)
        t += 15.0
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _run(scores: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    code = main(["alerts", "test", str(DEFAULT_RULES_FILE), "--scores", str(scores), "--tail", "0s"])
    out, _err = capsys.readouterr()
    assert code == 0
    return out.splitlines()


def test_a_quiet_day_pages_nobody(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _run(_write(tmp_path / "quiet.jsonl", None), capsys)
    assert lines == []


def test_an_incident_fires_every_default_rule_and_resolves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _run(_write(tmp_path / "incident.jsonl", (24.0, 25.0)), capsys)
    fired = {m.group(1) for line in lines if (m := re.search(r" fired +([a-z0-9-]+)\{", line))}
    resolved = {m.group(1) for line in lines if (m := re.search(r" resolved +([a-z0-9-]+)\{", line))}
    assert fired == {"error-rate", "latency-p95", "judge-pass-rate-drop", "cost-spike", "token-volume"}
    # the 15m/10m windows recover within the last hour of normal traffic
    assert {"error-rate", "latency-p95"} <= resolved
    judge = next(line for line in lines if " fired " in line and "judge-pass-rate-drop" in line)
    assert "evaluator=helpfulness" in judge and "project=shop" in judge
    notified = [line for line in lines if " notified " in line]
    assert notified and all("console" in line for line in notified)
    assert any(" firing firing=[" in line and "error-rate{" in line for line in notified)
    assert any(" resolved firing=[]" in line for line in notified)
