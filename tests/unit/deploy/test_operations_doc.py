"""Every alert the chart ships has a runbook section in docs/operations.md, and every
runbook link points at a heading that exists."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def _anchors(markdown: str) -> set[str]:
    return {
        re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", markdown, re.M)
    }


def test_every_alert_links_to_its_runbook_section() -> None:
    rules = yaml.safe_load((ROOT / "charts" / "spanline" / "rules" / "spanline-rules.yaml").read_text())
    anchors = _anchors((ROOT / "docs" / "operations.md").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert alerts
    for rule in alerts:
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/operations.md", rule["alert"]
        assert anchor == rule["alert"].lower(), rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no section '{anchor}' in docs/operations.md"
