"""The alert rules with the real promtool: the rules file checks, its unit tests pass, every
alert has a unit test that makes it fire, and the rules pulled back out of the rendered
PrometheusRule check too (what the operator loads is what was tested)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.integration.deploy.conftest import ROOT

RULES_DIR = ROOT / "charts" / "spanline" / "rules"
RULES = RULES_DIR / "spanline-rules.yaml"
RULE_TESTS = RULES_DIR / "spanline-rules.test.yaml"


def _promtool(promtool: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(promtool), *args], capture_output=True, text=True, cwd=cwd)


def test_rules_check_and_their_unit_tests_pass(promtool: Path) -> None:
    proc = _promtool(promtool, "check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _promtool(promtool, "test", "rules", RULE_TESTS.name, cwd=RULES_DIR)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    alerts = {
        r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r
    }
    fired = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts - fired == set(), "alerts without a promtool test in which they fire"


def test_rules_in_the_rendered_prometheus_rule_check(
    render: Callable[..., list[dict[str, Any]]], promtool: Path, tmp_path: Path
) -> None:
    docs = render(values=("default-values.yaml",), monitoring=True)
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    path = tmp_path / "rendered-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    proc = _promtool(promtool, "check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert f"SUCCESS: {sum(len(g['rules']) for g in rule['spec']['groups'])} rules found" in proc.stdout
    assert len(alerts) >= 14


def test_rules_name_only_metrics_the_services_define() -> None:
    from tests.integration.deploy.test_dashboards import _NAME, exported_metric_names

    exprs = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    used = {m for expr in exprs for m in _NAME.findall(expr)}
    assert used - exported_metric_names() == set(), "the rules use metrics no service defines"
