"""A real Prometheus (Debian's binary) scrapes the real services of `spanline up` under a
short load, with the chart's rules loaded and the judge on (a scripted judge endpoint on a
local socket, tests/support/judge_stub.py). What is checked, precisely:

1. every metric name used by the rules and the "spanline pipeline" dashboard is declared
   (HELP/TYPE, Prometheus's metadata API) by a scraped spanline service, for every service
   registered in spanline.components.SERVICES (a metric owned by an unregistered service
   is reported, not required);
2. every PromQL expression of the rules and of the dashboard evaluates without error;
3. every dashboard expression returns data, failure paths included: the services create
   each labelled series of their failure counters at 0 when they start (DLQ, rejections,
   failed inserts, maintenance failures, notifications, judge verdicts), so a panel shows 0,
   not "No data", and an alert sees the first failure as an increase;
4. no alert expression returns data here (a healthy pipeline fires none; their logic is
   covered by the promtool unit tests), yet each one reads series: with its thresholds
   made ``bool`` and its top-level ``and``/``unless`` conditions left out (:func:`probe`),
   every alternative of it returns at least one series. An alert whose input has no
   series could never fire.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from spanline.components import SERVICES
from spanline.core.broker import free_port
from tests.integration.deploy.conftest import ROOT
from tests.integration.up.upctl import Up, up_env
from tests.support.judge_stub import JudgeStub

pytestmark = pytest.mark.integration

PROMETHEUS = Path("/usr/bin/prometheus")
RULES = ROOT / "charts" / "spanline" / "rules" / "spanline-rules.yaml"
DASHBOARDS = ROOT / "charts" / "spanline" / "dashboards"  # the committed JSON the chart ships
LOAD = ("--spans", "3000", "--json")
_NAME = re.compile(r"\b(spanline_[a-z0-9_]+|process_[a-z0-9_]+)\b")
_BANNER_PORT = re.compile(r"\[spanline up\]\s+(\w+)\s.*metrics http://[^:]+:(\d+)/metrics")
STAGE_OUTPUTS = {
    "scorer": "spanline_scorer_scores_total",
    "coldtier": "spanline_coldtier_rows_committed_total",
    "writer": "spanline_writer_rows_written_total",
    "scorer-judge": "spanline_judge_verdicts_total",
}
OWNER_PREFIXES = {
    "spanline_judge_": "scorer",
    "spanline_scorer_": "scorer",
    "spanline_coldtier_": "coldtier",
    "spanline_alerter_": "alerter",
    "spanline_writer_": "writer",
    "spanline_redactor_": "redactor",
    "spanline_ingest_": "ingest",
}


def _owner(metric: str) -> str | None:
    return next((svc for prefix, svc in OWNER_PREFIXES.items() if metric.startswith(prefix)), None)


def _family(metric: str) -> set[str]:
    return {metric, *(metric.removesuffix(s) for s in ("_bucket", "_count", "_sum") if metric.endswith(s))}


class Prom:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[Any]:
        try:
            return list(self.get("/api/v1/query", query=expr)["result"])
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{expr!r}: {exc.read().decode()}") from None


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prom, dict[str, str]]]:
    if not PROMETHEUS.exists():
        print("SKIP: /usr/bin/prometheus is not installed (make tools installs Debian's prometheus)")
        pytest.skip("/usr/bin/prometheus is not installed (make tools)")
    tmp = tmp_path_factory.mktemp("prom-e2e")
    started = time.monotonic()
    judge = JudgeStub().__enter__()
    # stages commit and close within the run: coldtier batches after 1 s, traces after 2 s
    # quiet; the judge is on (its panels and alerts read its series), sampling a fifth
    env = {
        **up_env(tmp),
        "SPANLINE_COLDTIER_BATCH_MAX_WAIT_S": "1",
        "SPANLINE_SCORER_QUIET_AFTER_ROOT_S": "2",
        "SPANLINE_SCORER_JUDGE_ENABLED": "true",
        "SPANLINE_SCORER_JUDGE_BASE_URL": judge.base_url,
        "SPANLINE_SCORER_JUDGE_MODEL": "judge",
        "SPANLINE_SCORER_JUDGE_API_KEY": "test-key",
        "SPANLINE_SCORER_JUDGE_SAMPLE_RATE": "0.2",
        "SPANLINE_SCORER_JUDGE_RPM": "60000",
    }
    up = Up(env, "--drain-timeout", "10")
    prom: subprocess.Popen[bytes] | None = None
    try:
        banner = up.wait_banner(120)
        ports = dict(_BANNER_PORT.findall(banner))
        assert set(ports) == {s.name for s in SERVICES.values() if s.available()}, banner
        rules = tmp / "rules.yaml"
        shutil.copy(RULES, rules)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [
                {"job_name": f"spanline-{name}", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for name, port in ports.items()
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log = open(tmp / "prometheus.log", "wb")
        prom = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        client = Prom(port)
        proc = subprocess.run(
            [sys.executable, "-m", "spanline.cli.main", "loadgen", "--target", up.ingest_target, *LOAD],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["spans_acked"] == 3000
        # until every target is up and each registered stage's output has a rate (2+ samples)
        outputs = ['spanline_kafka_consumed_records_total{topic=~".*redacted"}']
        outputs += [metric for stage, metric in STAGE_OUTPUTS.items() if stage.split("-")[0] in ports]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with_data = all(client.query(f"count(rate({m}[30s]))") for m in outputs)
            targets = client.get("/api/v1/targets")["activeTargets"]
            if with_data and all(t["health"] == "up" for t in targets) and len(targets) == len(ports):
                break
            time.sleep(1)
        time.sleep(4)
        print(f"prometheus e2e: up + load + first scrapes in {time.monotonic() - started:.1f}s")
        yield client, ports
    finally:
        if prom is not None:
            prom.terminate()
            prom.wait(30)
        up.interrupt(120)
        judge.__exit__(None, None, None)
        print(f"prometheus e2e: fixture total {time.monotonic() - started:.1f}s")


def _rule_exprs() -> list[tuple[str, str, bool]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(r.get("alert") or r["record"], r["expr"], "alert" in r) for g in groups for r in g["rules"]]


def _dashboard_exprs() -> list[str]:
    """The PromQL of every committed dashboard (only "spanline pipeline" has any: "LLM usage"
    reads ClickHouse, whose queries test_dashboards.py runs on chdb)."""
    exprs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                exprs.append(node["expr"].replace("$__rate_interval", "30s"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted(DASHBOARDS.glob("*.json")):
        walk(json.loads(path.read_text(encoding="utf-8")))
    assert exprs, f"no PromQL found under {DASHBOARDS}"
    return exprs


def test_every_metric_used_is_declared_by_a_scraped_service(scraped: tuple[Prom, dict[str, str]]) -> None:
    client, _ = scraped
    declared = set(client.get("/api/v1/metadata"))
    used = {m for _, e, _ in _rule_exprs() for m in _NAME.findall(e)}
    used |= {m for e in _dashboard_exprs() for m in _NAME.findall(e)}
    missing = []
    for metric in sorted(used):
        owner = _owner(metric)
        if owner is not None and owner not in SERVICES:
            print(f"not required: {metric} belongs to {owner}, which is not registered")
            continue
        if not _family(metric) & declared:
            missing.append(metric)
    assert missing == [], "used by the rules/dashboard but no scraped service declares them"


def test_every_expression_returns_data_and_no_alert_fires(scraped: tuple[Prom, dict[str, str]]) -> None:
    client, _ = scraped
    firing = [name for name, expr, alert in _rule_exprs() if alert and client.query(expr)]
    assert firing == [], "alert expressions return data on a healthy pipeline"
    empty = [f"dashboard: {expr}" for expr in _dashboard_exprs() if not client.query(expr)]
    for name, expr, _ in _rule_exprs():
        empty += [f"rule {name}: {part}" for part in probe(expr) if not client.query(part)]
    for line in empty:
        print(f"no data: {line}")
    assert empty == [], "expressions without a series on a healthy pipeline:\n" + "\n".join(empty)


_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(\s*)(?=[-+]?[0-9.])")
_SET_OPERATOR = re.compile(r"\b(and|or|unless)\b")


def probe(expr: str) -> list[str]:
    """What an alert reads, as expressions that return every input series.

    Each comparison with a number becomes a ``bool`` comparison (series kept, valued 0 or 1),
    the expression is split at its top-level set operators, and the operands after ``and``
    and ``unless`` (conditions that narrow the alert, such as "and the lag is growing") are
    left out: what remains are the alternatives, each of which must read a series.
    """
    text = re.sub(r"#[^\n]*", "", expr)
    parts: list[tuple[str, str]] = []  # (operator before it, operand)
    depth, start, op = 0, 0, "or"
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1, "[": 1, "]": -1, "{": 1, "}": -1}.get(ch, 0)
        if depth == 0 and (m := _SET_OPERATOR.match(text, i)) and (i == 0 or not text[i - 1].isalnum()):
            parts.append((op, text[start:i]))
            op, start = m.group(1), m.end()
    parts.append((op, text[start:]))
    return [_COMPARISON.sub(r"\1 bool\2", part).strip() for op, part in parts if op == "or"]


def test_probe_keeps_the_alternatives_with_bool_thresholds() -> None:
    expr = """sum by (job) (increase(x_total{outcome!="retried"}[10m])) > 0
      # a comment with > 0 and or in it
      or sum by (job) (x_total unless x_total offset 10m) > 0.5
      and on (job) up == 1"""
    assert [" ".join(p.split()) for p in probe(expr)] == [
        'sum by (job) (increase(x_total{outcome!="retried"}[10m])) > bool 0',
        "sum by (job) (x_total unless x_total offset 10m) > bool 0.5",
    ]
    assert probe("a > 10000 and deriv(a[15m:1m]) > 0") == ["a > bool 10000"]
    every = [part for _, expr, _ in _rule_exprs() for part in probe(expr)]
    assert every and all(" bool " in part for part in every)
