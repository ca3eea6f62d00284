"""The Grafana dashboards, checked without a Grafana server (none can be installed here):
the committed JSON equals what charts/dashboards.py builds; every PromQL expression parses
in promtool and names only metrics the services export; every ClickHouse query, with the
data source's macros expanded as its plugin does, runs on chdb against the real migrations
and returns rows after a short load built by the real span model."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from spanline.loadgen.genai_traces import build_requests
from spanline.spans.pricing import PricingTable
from spanline.spans.rows import ScoreRows, SpanRows
from spanline.v1.spanline_pb2 import Score
from spanline.writer.migrate import apply_migrations
from spanline.writer.store import connect
from tests.integration.deploy.conftest import ROOT

sys.path.insert(0, str(ROOT / "charts"))
import dashboards

METRIC_MODULES = (
    "spanline.core.kafka.metrics",
    "spanline.ingest.metrics",
    "spanline.redactor.metrics",
    "spanline.writer.metrics",
    "spanline.spans.metrics",
    "spanline.scorer.metrics",
    "spanline.scorer.judging.metrics",
    "spanline.coldtier.metrics",
    "spanline.alerter.metrics",
)
_NAME = re.compile(r"\b(spanline_[a-z0-9_]+|process_[a-z0-9_]+)\b")


def test_committed_dashboards_match_the_generator() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "charts" / "dashboards.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def exported_metric_names() -> set[str]:
    """Sample names of every metric the services define (counters as *_total, histograms as *_bucket)."""
    for module in METRIC_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            continue
    names = set()
    for collector in list(REGISTRY._collector_to_names):
        for family in collector.describe() if hasattr(collector, "describe") else []:
            names.update(
                {family.name, family.name + "_total", family.name + "_bucket", family.name + "_count"}
            )
    names.update({"process_resident_memory_bytes", "process_cpu_seconds_total"})
    return names


def test_every_promql_expression_parses_and_names_exported_metrics(promtool: Path, tmp_path: Path) -> None:
    exprs = dashboards.promql_expressions()
    assert len(exprs) >= 10
    rules = [
        {"record": f"dashboard:expr_{i}", "expr": expr.replace("$__rate_interval", "1m")}
        for i, expr in enumerate(exprs)
    ]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = subprocess.run([str(promtool), "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exported = exported_metric_names()
    used = {m for expr in exprs for m in _NAME.findall(expr)}
    assert used - exported == set(), "the dashboard uses metrics no service exports"


FROM_S, TO_S = int(time.time()) - 3 * 3600, int(time.time()) + 600


def expand_macros(sql: str, interval_s: int = 60, variables: dict[str, str] | None = None) -> str:
    """The ClickHouse data source's macros (pkg/macros/macros.go) and dashboard variables."""

    def time_filter(m: re.Match[str]) -> str:
        col = m.group(1)
        return f"{col} >= toDateTime({FROM_S}) AND {col} <= toDateTime({TO_S})"

    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", time_filter, sql)
    sql = re.sub(
        r"\$__timeInterval\(([^)]+)\)",
        lambda m: f"toStartOfInterval(toDateTime({m.group(1)}), INTERVAL {max(interval_s, 1)} second)",
        sql,
    )
    sql = sql.replace("$__fromTime", f"toDateTime({FROM_S})").replace("$__toTime", f"toDateTime({TO_S})")
    for name, value in (variables or {}).items():
        sql = sql.replace("${" + name + "}", value).replace("$" + name, value)
    assert "$" not in sql, f"unexpanded macro or variable in: {sql}"
    return sql


@pytest.fixture(scope="module")
def loaded_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    path = tmp_path_factory.mktemp("dashboards-chdb") / "clickhouse"
    client = connect(f"chdb://{path}")
    try:
        apply_migrations(client, "spanline", 30)
        now = time.time_ns()
        spans = SpanRows(PricingTable.load())
        trace_ids: list[str] = []
        for request in build_requests(400, 100, seed=7, start_time_ns=now - 3600 * 10**9):
            spans.add_bytes(request.SerializeToString(), "shop", now)
            trace_ids += [
                s.trace_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans
            ]
        scores = ScoreRows()
        for i, trace in enumerate(sorted(set(trace_ids))):
            for name, kind, value, label, weight in (
                ("error", "heuristic", float(i % 10 == 0), "", 1.0),
                (
                    "helpfulness",
                    "llm_judge",
                    float(i % 4 != 0),
                    "pass" if i % 4 else "fail",
                    20.0 if i % 2 else 1.0,
                ),
            ):
                scores.add(
                    Score(
                        score_id=f"{trace}-{name}",
                        project_id="shop",
                        trace_id=bytes.fromhex(trace),
                        name=name,
                        score_value=value,
                        score_label=label,
                        evaluator_kind=kind,
                        sampling_weight=weight,
                        time_unix_nano=now - 1800 * 10**9,
                    ),
                    "shop",
                    now,
                )
        client.insert_arrow("spanline.spans", spans.take())
        client.insert_arrow("spanline.scores", scores.take())
        failing = client.query(
            "SELECT trace_id FROM spanline.spans WHERE status_code = 'ERROR' LIMIT 1"
        ).result_rows[0][0]
        yield client, failing
    finally:
        client.close()


def test_every_clickhouse_query_runs_on_the_real_schema_and_returns_rows(
    loaded_client: tuple[Any, str],
) -> None:
    client, failing_trace = loaded_client
    queries = dashboards.clickhouse_queries()
    assert len(queries) >= 8
    for sql, fmt in queries:
        expanded = expand_macros(sql, variables={"trace_id": failing_trace})
        result = client.query(expanded)
        assert result.result_rows, f"no rows from: {sql}"
        if fmt == 0:  # a time series: the time column comes first and is a DateTime
            assert result.column_names[0] == "time", sql
            assert "DateTime" in str(result.column_types[0].name), sql
