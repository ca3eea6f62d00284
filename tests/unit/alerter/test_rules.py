"""Rule files: shipped defaults load; bad files give errors naming the rule and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spanline.alerter.durations import DurationError, format_duration, parse_duration
from spanline.alerter.rules import RulesError, load_rules, parse_rules


def _rule(**extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "cost",
        "score": "cost_usd",
        "aggregate": "sum",
        "window": "1h",
        "threshold": {"op": ">", "value": 5},
    }
    base.update(extra)
    return base


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(RulesError) as info:
        parse_rules(data, "r.yaml")
    return str(info.value)


def test_shipped_defaults_load_and_cover_the_five_signals() -> None:
    rules = load_rules(None)
    assert {r.name for r in rules.rules} == {
        "error-rate",
        "latency-p95",
        "judge-pass-rate-drop",
        "cost-spike",
        "token-volume",
    }


def test_unknown_key_names_rule_and_key() -> None:
    msg = _error({"rules": [_rule(treshold=3)]})
    assert "rule 'cost': treshold: unknown key" in msg


def test_bad_duration_names_rule_and_key() -> None:
    msg = _error({"rules": [_rule(window="ten minutes")]})
    assert "rule 'cost': window:" in msg and "not a duration" in msg


def test_baseline_without_min_baseline_is_refused() -> None:
    change = {"pct": 50, "min_abs_delta": 1}
    msg = _error({"rules": [_rule(threshold=None, change=change)]})
    assert "rule 'cost'" in msg and "min_baseline" in msg


def test_threshold_and_change_are_exclusive() -> None:
    change = {"pct": 50, "min_abs_delta": 1, "min_baseline": 1}
    msg = _error({"rules": [_rule(change=change)]})
    assert "exactly one of 'threshold' or 'change'" in msg


def test_unknown_template_field_and_receiver() -> None:
    msg = _error({"rules": [_rule(annotations={"summary": "{{ valeu }}"})]})
    assert "unknown template field" in msg and "rule 'cost'" in msg
    msg = _error({"rules": [_rule()], "route": {"receiver": "nobody"}})
    assert "unknown receiver 'nobody'" in msg


def test_secret_value_never_in_error(tmp_path: Path) -> None:
    data = {
        "receivers": [
            {"name": "s", "slack": [{"mode": "webhook", "webhook_url": "https://hooks/SECRET123", "x": 1}]}
        ]
    }
    assert "SECRET123" not in _error(data)


def test_lint_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "r.yaml"
    bad.write_text("rules: [\n")
    with pytest.raises(RulesError, match="not valid YAML at line"):
        load_rules(bad)


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    assert format_duration(5400) == "1h30m"
    with pytest.raises(DurationError):
        parse_duration("5 minutes")
