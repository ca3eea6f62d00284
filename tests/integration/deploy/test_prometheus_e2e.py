"""A real Prometheus (Debian's binary) scrapes the real services of `spanline up` under a
short load, with the chart's rules loaded. What is checked, precisely:

1. every metric name used by the rules and the "spanline pipeline" dashboard is declared
   (HELP/TYPE, Prometheus's metadata API) by a scraped spanline service, for every service
   registered in spanline.components.SERVICES (a metric owned by an unregistered service
   is reported, not required);
2. every PromQL expression of the rules and of the dashboard evaluates without error;
3. every dashboard expression returns data, unless every metric it reads is declared but
   has no series at all yet: a labelled counter of a failure path (DLQ, rejections,
   failed inserts, maintenance failures, notifications: no alert rule fires here) that a
   healthy run never increments, or the judge's metrics (the judge is off without an
   endpoint); the stages' own outputs (scores, Iceberg and ClickHouse rows) must have data;
4. alert expressions are only evaluated (a healthy pipeline fires none; their logic is
   covered by the promtool unit tests), and no alert expression returns data here.
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

sys.path.insert(0, str(ROOT / "charts"))
import dashboards

pytestmark = pytest.mark.integration

PROMETHEUS = Path("/usr/bin/prometheus")
RULES = ROOT / "charts" / "spanline" / "rules" / "spanline-rules.yaml"
LOAD = ("--spans", "3000", "--json")
_NAME = re.compile(r"\b(spanline_[a-z0-9_]+|process_[a-z0-9_]+)\b")
_BANNER_PORT = re.compile(r"\[spanline up\]\s+(\w+)\s.*metrics http://[^:]+:(\d+)/metrics")
STAGE_OUTPUTS = {
    "scorer": "spanline_scorer_scores_total",
    "coldtier": "spanline_coldtier_rows_committed_total",
    "writer": "spanline_writer_rows_written_total",
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
    # stages commit and close within the run: coldtier batches after 1 s, traces after 2 s quiet
    env = {
        **up_env(tmp),
        "SPANLINE_COLDTIER_BATCH_MAX_WAIT_S": "1",
        "SPANLINE_SCORER_QUIET_AFTER_ROOT_S": "2",
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
        outputs += [metric for service, metric in STAGE_OUTPUTS.items() if service in ports]
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
        print(f"prometheus e2e: fixture total {time.monotonic() - started:.1f}s")


def _rule_exprs() -> list[tuple[str, str, bool]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(r.get("alert") or r["record"], r["expr"], "alert" in r) for g in groups for r in g["rules"]]


def _dashboard_exprs() -> list[str]:
    return [e.replace("$__rate_interval", "30s") for e in dashboards.promql_expressions()]


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


def test_every_expression_evaluates_and_dashboard_panels_have_data(
    scraped: tuple[Prom, dict[str, str]],
) -> None:
    client, _ = scraped
    no_series: dict[str, bool] = {}

    def series_less(metric: str) -> bool:
        if metric not in no_series:
            no_series[metric] = not client.get("/api/v1/series", **{"match[]": metric})
        return no_series[metric]

    firing = [name for name, expr, alert in _rule_exprs() if alert and client.query(expr)]
    assert firing == [], "alert expressions return data on a healthy pipeline"
    empty = []
    for expr in _dashboard_exprs():
        if client.query(expr):
            continue
        metrics = _NAME.findall(expr)
        if metrics and all(series_less(m) for m in metrics):
            print(f"no data (declared, no series yet: a failure path, or the judge, which is off): {expr}")
            continue
        empty.append(expr)
    assert empty == [], "dashboard expressions without data although their metrics have series"
