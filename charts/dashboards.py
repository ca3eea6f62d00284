"""The Grafana dashboards as code: writes charts/spanline/dashboards/*.json, or checks them.

    python charts/dashboards.py          # regenerate
    python charts/dashboards.py --check  # exit 1 when the committed JSON differs (drift test)

Built with grafana-foundation-sdk (Grafana 11 models). The SDK has no ClickHouse query
type, so :class:`ClickHouseQuery` adds one with the exact fields the ClickHouse data
source plugin stores (editorType, queryType, rawSql, format). Every PromQL expression and
every SQL statement is also exposed (:func:`promql_expressions`, :func:`clickhouse_queries`)
so the tests can run them against a real Prometheus and the real schema.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

OUT = Path(__file__).resolve().parent / "spanline" / "dashboards"
DATABASE = "spanline"
PROM_DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
CH_DS = dm.DataSourceRef(type_val="grafana-clickhouse-datasource", uid="${clickhouse}")
SERVICES_RE = "ingest|redactor|scorer|writer|coldtier|alerter"


class ClickHouseQuery(cogvariants.Dataquery):
    """A target of the ClickHouse data source (grafana-clickhouse-datasource)."""

    def __init__(self, sql: str, fmt: int, ref_id: str) -> None:
        self.sql, self.fmt, self.ref_id = sql, fmt, ref_id

    def to_json(self) -> dict[str, object]:
        # format: 0 time series, 1 table (grafana-plugin-sdk-go sqlutil)
        return {
            "refId": self.ref_id,
            "datasource": {"type": CH_DS.type_val, "uid": CH_DS.uid},
            "editorType": "sql",
            "queryType": "timeseries" if self.fmt == 0 else "table",
            "format": self.fmt,
            "rawSql": self.sql,
        }


class ClickHouse(cogbuilder.Builder[ClickHouseQuery]):
    def __init__(self, sql: str, *, fmt: int = 0, ref_id: str = "A") -> None:
        self._internal = ClickHouseQuery(" ".join(sql.split()), fmt, ref_id)

    def build(self) -> ClickHouseQuery:
        return self._internal


def _grid(x: int, y: int, w: int = 12, h: int = 8) -> dm.GridPos:
    return dm.GridPos(x=x, y=y, w=w, h=h)


def _prom_ts(title: str, unit: str, pos: dm.GridPos, *exprs: tuple[str, str]) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(PROM_DS).grid_pos(pos)
    for i, (expr, legend) in enumerate(exprs):
        panel = panel.with_target(
            prometheus.Dataquery().expr(expr).legend_format(legend).ref_id("ABCDEFGH"[i])
        )
    return panel


def _rate(metric: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}[$__rate_interval]))"


def _p99(metric: str, by: str) -> str:
    return f"histogram_quantile(0.99, sum by (le, {by}) (rate({metric}_bucket[$__rate_interval])))"


def pipeline_dashboard() -> dash.Dashboard:
    svc = f'job=~".*({SERVICES_RE}).*"'
    d = (
        dash.Dashboard("spanline pipeline")
        .uid("spanline-pipeline")
        .tags(["spanline"])
        .description("Throughput, lag, errors, latency and resources of every spanline service (Prometheus)")
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("utc")
        .with_variable(dash.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    y = 0
    d = d.with_row(dash.Row("Throughput").grid_pos(_grid(0, y, 24, 1)))
    y += 1
    d = d.with_panel(
        _prom_ts(
            "Spans and log records accepted by ingest",
            "ops",
            _grid(0, y),
            (_rate("spanline_ingest_items_accepted_total", "protocol, signal"), "{{protocol}} {{signal}}"),
        )
    ).with_panel(
        _prom_ts(
            "Records consumed per stage",
            "ops",
            _grid(12, y),
            (_rate("spanline_kafka_consumed_records_total", "job, topic"), "{{job}} <- {{topic}}"),
        )
    )
    y += 8
    d = d.with_panel(
        _prom_ts(
            "Records produced per topic",
            "ops",
            _grid(0, y),
            (_rate("spanline_kafka_produced_records_total", "job, topic"), "{{job}} -> {{topic}}"),
        )
    ).with_panel(
        _prom_ts(
            "Rows written to ClickHouse",
            "ops",
            _grid(12, y),
            (_rate("spanline_writer_rows_written_total", "table"), "{{table}}"),
        )
    )
    y += 8
    d = d.with_row(dash.Row("Lag and back-pressure").grid_pos(_grid(0, y, 24, 1)))
    y += 1
    d = d.with_panel(
        _prom_ts(
            "Consumer lag (records behind the high watermark)",
            "short",
            _grid(0, y),
            ("sum by (job, topic) (spanline_kafka_consumer_lag)", "{{job}} {{topic}}"),
        )
    ).with_panel(
        _prom_ts(
            "Export answers by code",
            "reqps",
            _grid(12, y),
            (_rate("spanline_ingest_requests_total", "protocol, code"), "{{protocol}} {{code}}"),
            ("max by (job) (spanline_kafka_consumer_paused)", "paused {{job}}"),
        )
    )
    y += 8
    d = d.with_row(dash.Row("Errors").grid_pos(_grid(0, y, 24, 1)))
    y += 1
    d = d.with_panel(
        _prom_ts(
            "Dead-lettered records",
            "ops",
            _grid(0, y),
            (_rate("spanline_dlq_records_total", "job, topic, reason"), "{{job}} {{topic}} {{reason}}"),
        )
    ).with_panel(
        _prom_ts(
            "Rejections, failed inserts, commits and retries",
            "ops",
            _grid(12, y),
            (_rate("spanline_ingest_items_rejected_total", "reason"), "ingest rejected: {{reason}}"),
            (
                _rate("spanline_writer_insert_failures_total", "table, outcome"),
                "insert {{table}} {{outcome}}",
            ),
            (_rate("spanline_kafka_commit_failures_total", "job"), "commit failed {{job}}"),
            (_rate("spanline_processing_retries_total", "job"), "batch retried {{job}}"),
        )
    )
    y += 8
    d = d.with_row(dash.Row("Latency").grid_pos(_grid(0, y, 24, 1)))
    y += 1
    d = d.with_panel(
        _prom_ts(
            "p99 latency per step",
            "s",
            _grid(0, y),
            (_p99("spanline_ingest_export_seconds", "protocol"), "ingest export {{protocol}}"),
            (_p99("spanline_redactor_latency_seconds", "job"), "redaction per message"),
            (_p99("spanline_writer_insert_seconds", "table"), "insert {{table}}"),
        )
    ).with_panel(
        _prom_ts(
            "p99 batch processing time per service",
            "s",
            _grid(12, y),
            (_p99("spanline_batch_seconds", "job"), "{{job}}"),
        )
    )
    y += 8
    d = d.with_row(dash.Row("Scorer, cold tier and alerter").grid_pos(_grid(0, y, 24, 1)))
    y += 1
    d = d.with_panel(
        _prom_ts(
            "Judge verdicts and errors",
            "ops",
            _grid(0, y),
            (_rate("spanline_judge_verdicts_total", "evaluator, label"), "{{evaluator}} {{label}}"),
            (_rate("spanline_scorer_scores_total", "kind"), "scores {{kind}}"),
            ("min by (project) (spanline_judge_bulk_factor)", "bulk budget pace {{project}}"),
        )
    ).with_panel(
        _prom_ts(
            "Cold-tier commits and alert notifications",
            "ops",
            _grid(12, y),
            (_rate("spanline_coldtier_rows_committed_total", "table"), "iceberg rows {{table}}"),
            (_rate("spanline_coldtier_maintenance_failures_total", "step"), "maintenance failed {{step}}"),
            (_rate("spanline_alerter_notifications_total", "receiver, outcome"), "{{receiver}} {{outcome}}"),
        )
    )
    y += 8
    d = d.with_row(dash.Row("Resources").grid_pos(_grid(0, y, 24, 1)))
    y += 1
    d = d.with_panel(
        _prom_ts(
            "Resident memory",
            "bytes",
            _grid(0, y),
            (f"sum by (job) (process_resident_memory_bytes{{{svc}}})", "{{job}}"),
        )
    ).with_panel(
        _prom_ts(
            "CPU",
            "percentunit",
            _grid(12, y),
            (f"sum by (job) (rate(process_cpu_seconds_total{{{svc}}}[$__rate_interval]))", "{{job}}"),
        )
    )
    return d


SPANS = f"{DATABASE}.spans"
SCORES = f"{DATABASE}.scores"
MODEL_CALL = "operation IN ('chat', 'text_completion', 'generate_content', 'embeddings')"


def usage_dashboard() -> dash.Dashboard:
    # a field data link as Grafana stores it: clicking a trace id fills the trace_id variable
    trace_link = {
        "title": "Spans of this trace",
        "url": "/d/spanline-llm-usage/llm-usage?var-trace_id=${__value.raw}&${__url_time_range}",
    }
    d = (
        dash.Dashboard("LLM usage")
        .uid("spanline-llm-usage")
        .tags(["spanline"])
        .description(
            "Requests, tokens, cost, latency, errors and judge pass rates from the hot tier (ClickHouse)"
        )
        .refresh("1m")
        .time("now-24h", "now")
        .timezone("utc")
        .with_variable(
            dash.DatasourceVariable("clickhouse").label("ClickHouse").type("grafana-clickhouse-datasource")
        )
        .with_variable(dash.TextBoxVariable("trace_id").label("trace id"))
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("Model calls by model")
        .unit("short")
        .datasource(CH_DS)
        .grid_pos(_grid(0, 0))
        .with_target(
            ClickHouse(
                f"""SELECT $__timeInterval(start_time) AS time, request_model, count() AS calls
                FROM {SPANS} WHERE $__timeFilter(start_time) AND {MODEL_CALL}
                GROUP BY time, request_model ORDER BY time"""
            )
        )
    ).with_panel(
        timeseries.Panel()
        .title("Tokens")
        .unit("short")
        .datasource(CH_DS)
        .grid_pos(_grid(12, 0))
        .with_target(
            ClickHouse(
                f"""SELECT $__timeInterval(start_time) AS time, sum(input_tokens) AS input,
                sum(output_tokens) AS output, sum(cached_input_tokens) AS cached_input
                FROM {SPANS} WHERE $__timeFilter(start_time) AND {MODEL_CALL}
                GROUP BY time ORDER BY time"""
            )
        )
    )
    d = d.with_panel(
        table.Panel()
        .title("Cost by project and model")
        .datasource(CH_DS)
        .grid_pos(_grid(0, 8))
        .with_target(
            ClickHouse(
                f"""SELECT project_id, request_model, count() AS calls,
                sum(input_tokens) AS total_input_tokens,
                sum(output_tokens) AS total_output_tokens, round(sum(cost_usd), 4) AS total_cost_usd,
                countIf(cost_usd IS NULL AND input_tokens > 0) AS unpriced_calls
                FROM {SPANS} WHERE $__timeFilter(start_time) AND {MODEL_CALL}
                GROUP BY project_id, request_model ORDER BY total_cost_usd DESC LIMIT 100""",
                fmt=1,
            )
        )
    ).with_panel(
        timeseries.Panel()
        .title("Cost (USD) by project")
        .unit("currencyUSD")
        .datasource(CH_DS)
        .grid_pos(_grid(12, 8))
        .with_target(
            ClickHouse(
                f"""SELECT $__timeInterval(start_time) AS time, project_id, sum(cost_usd) AS cost_usd
                FROM {SPANS} WHERE $__timeFilter(start_time) AND {MODEL_CALL}
                GROUP BY time, project_id ORDER BY time"""
            )
        )
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("Trace latency percentiles (root spans)")
        .unit("ms")
        .datasource(CH_DS)
        .grid_pos(_grid(0, 16))
        .with_target(
            ClickHouse(
                f"""SELECT $__timeInterval(start_time) AS time,
                quantile(0.5)(duration_ns / 1e6) AS p50, quantile(0.95)(duration_ns / 1e6) AS p95,
                quantile(0.99)(duration_ns / 1e6) AS p99
                FROM {SPANS} WHERE $__timeFilter(start_time) AND parent_span_id = ''
                GROUP BY time ORDER BY time"""
            )
        )
    ).with_panel(
        timeseries.Panel()
        .title("Error rate (spans with status ERROR)")
        .unit("percentunit")
        .datasource(CH_DS)
        .grid_pos(_grid(12, 16))
        .with_target(
            ClickHouse(
                f"""SELECT $__timeInterval(start_time) AS time, project_id,
                countIf(status_code = 'ERROR') / count() AS error_rate
                FROM {SPANS} WHERE $__timeFilter(start_time)
                GROUP BY time, project_id ORDER BY time"""
            )
        )
    )
    d = d.with_panel(
        table.Panel()
        .title("Judge pass rates (weighted by inverse inclusion probability)")
        .description(
            "Each judged trace counts for the traces it represents (sampling_weight = 1/p): the weighted "
            "pass rate estimates the population; the unweighted share of judged traces does not."
        )
        .datasource(CH_DS)
        .grid_pos(_grid(0, 24))
        .with_target(
            ClickHouse(
                f"""SELECT project_id, name AS evaluator, count() AS judged,
                round(sum(sampling_weight), 1) AS traces_represented,
                round(sum(sampling_weight * (score_value >= 1)) / nullIf(sum(sampling_weight), 0), 4)
                    AS weighted_pass_rate,
                round(pow(sum(sampling_weight), 2) / nullIf(sum(pow(sampling_weight, 2)), 0), 1)
                    AS effective_sample_size
                FROM {SCORES} WHERE $__timeFilter(time) AND evaluator_kind = 'llm_judge' AND score_label != ''
                GROUP BY project_id, evaluator ORDER BY project_id, evaluator""",
                fmt=1,
            )
        )
    ).with_panel(
        stat.Panel()
        .title("Traces scored")
        .datasource(CH_DS)
        .grid_pos(_grid(12, 24))
        .with_target(
            ClickHouse(
                f"""SELECT uniqExact(trace_id) AS traces FROM {SCORES}
                WHERE $__timeFilter(time) AND evaluator_kind = 'heuristic'""",
                fmt=1,
            )
        )
    )
    d = d.with_panel(
        table.Panel()
        .title("Top failing traces")
        .datasource(CH_DS)
        .grid_pos(_grid(0, 32, 24, 8))
        .with_target(
            ClickHouse(
                f"""SELECT trace_id, any(project_id) AS project, anyIf(name, parent_span_id = '') AS root,
                countIf(status_code = 'ERROR') AS error_spans, count() AS spans,
                round(sum(cost_usd), 4) AS cost_usd, max(end_time) AS last_seen
                FROM {SPANS} WHERE $__timeFilter(start_time)
                GROUP BY trace_id HAVING error_spans > 0
                ORDER BY error_spans DESC, last_seen DESC LIMIT 20""",
                fmt=1,
            )
        )
        .override_by_name("trace_id", [dm.DynamicConfigValue(id_val="links", value=[trace_link])])
    ).with_panel(
        table.Panel()
        .title("Spans of trace $trace_id")
        .datasource(CH_DS)
        .grid_pos(_grid(0, 40, 24, 10))
        .with_target(
            ClickHouse(
                f"""SELECT start_time, name, operation, request_model, status_code,
                round(duration_ns / 1e6, 1) AS duration_ms, input_tokens, output_tokens, cost_usd, span_id,
                parent_span_id
                FROM {SPANS} WHERE trace_id = '${{trace_id}}' ORDER BY start_time LIMIT 500""",
                fmt=1,
            )
        )
    )
    return d


DASHBOARDS = {"spanline-pipeline.json": pipeline_dashboard, "llm-usage.json": usage_dashboard}


def render(name: str) -> str:
    return JSONEncoder(sort_keys=True, indent=2).encode(DASHBOARDS[name]().build()) + "\n"


def _targets(name: str) -> list[dict[str, Any]]:
    model = json.loads(render(name))
    return [t for p in model.get("panels", []) for t in p.get("targets", []) or []]


def promql_expressions() -> list[str]:
    return [t["expr"] for name in DASHBOARDS for t in _targets(name) if "expr" in t]


def clickhouse_queries() -> list[tuple[str, int]]:
    return [(t["rawSql"], t["format"]) for name in DASHBOARDS for t in _targets(name) if "rawSql" in t]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write or check the Grafana dashboards")
    parser.add_argument("--check", action="store_true", help="exit 1 when a committed dashboard differs")
    args = parser.parse_args(argv)
    stale = []
    for name in DASHBOARDS:
        path, text = OUT / name, render(name)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        if args.check:
            stale.append(name)
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(
            f"dashboards differ from charts/dashboards.py (regenerate): {', '.join(stale)}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
