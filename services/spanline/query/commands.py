"""`spanline query` and `spanline trace`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from spanline.settings import Settings, load_settings


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML settings file (also SPANLINE_CONFIG)")


def run_query(
    settings: Settings, sql: str, *, fmt: str = "table", final: bool = True, tier: str = "hot"
) -> int:
    from spanline.query.client import QueryBackend, QueryError, open_backend
    from spanline.query.formatting import format_result

    try:
        # cold: this process reads Iceberg; all: through the running pipeline's endpoint, else here
        backend: QueryBackend = open_backend(settings, notice=_notice("query"), tier=tier)
        try:
            result = backend.query(sql, final=final)
        finally:
            backend.close()
    except QueryError as exc:
        print(f"spanline query: {exc}", file=sys.stderr)
        return 1
    print(format_result(result, fmt))
    if result.truncated:
        n = len(result.rows)
        print(
            f"spanline query: only the first {n:,} rows are shown; more matched. Add a LIMIT or an "
            f"aggregate, or raise writer.query_max_rows (SPANLINE_WRITER_QUERY_MAX_ROWS, now {n})",
            file=sys.stderr,
        )
    return 0


def _notice(command: str) -> Any:
    return lambda text: print(f"spanline {command}: {text}", file=sys.stderr)


# span columns the store keeps as JSON text; machines get them as arrays
_JSON_COLUMNS = ("events", "links")


def _decode_json_columns(doc: dict[str, Any]) -> dict[str, Any]:
    for span in doc.get("spans", ()):
        for key in _JSON_COLUMNS:
            value = span.get(key)
            if isinstance(value, str):
                try:
                    span[key] = json.loads(value) if value.strip() else []
                except ValueError:
                    pass  # not JSON after all: keep the text rather than lose it
    return doc


def run_trace(settings: Settings, trace_id: str, *, as_json: bool = False, project: str | None = None) -> int:
    from spanline.query.client import QueryError, open_backend
    from spanline.query.trace_view import fetch_trace, render_trace, trace_json
    from spanline.spans.object_store import ObjectStoreError, open_object_store
    from spanline.writer.config import resolve_object_store_url

    try:
        backend = open_backend(settings, notice=_notice("trace"))
        try:
            view = fetch_trace(backend, trace_id, project=project)
        finally:
            backend.close()
    except QueryError as exc:
        print(f"spanline trace: {exc}", file=sys.stderr)
        return 1
    if not view.spans and not view.scores:
        # older than the hot window: the cold tier holds every trace (read here, while
        # `spanline up` runs too: the cold tier needs no hot store)
        try:
            cold = open_backend(settings, tier="cold")
            try:
                view = fetch_trace(cold, trace_id, project=project)
            finally:
                cold.close()
        except QueryError as exc:
            print(
                f"spanline trace: trace {view.trace_id} not found in the hot tier; the cold tier "
                f"could not be searched: {exc}",
                file=sys.stderr,
            )
            return 1
    if not view.spans and not view.scores:
        print(f"spanline trace: trace {view.trace_id} not found", file=sys.stderr)
        return 1
    if not as_json:
        print(render_trace(view))
        return 0
    w = settings.writer
    try:
        store = open_object_store(
            resolve_object_store_url(settings), s3_endpoint_url=w.s3_endpoint_url, s3_region=w.s3_region
        )
        doc = _decode_json_columns(trace_json(view, store))
    except ObjectStoreError as exc:
        print(f"spanline trace: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(doc, ensure_ascii=False))
    sys.stdout.write("\n")
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    return run_query(
        load_settings(args.config), args.sql, fmt=args.format, final=not args.no_final, tier=args.tier
    )


def _cmd_trace(args: argparse.Namespace) -> int:
    return run_trace(load_settings(args.config), args.trace_id, as_json=args.json, project=args.project)


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "query",
        help="run read-only SQL on the hot store, the cold tier or both (works while `spanline up` runs)",
        description=(
            "Runs one read-only statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS). Tables: "
            "spans, logs, scores, alerts, audit in the writer.database. Results are deduplicated "
            "(SETTINGS final=1) unless --no-final. With --tier cold|all, spans and scores name the "
            "cold tier (Iceberg) or both tiers; --tier all runs in the running pipeline's writer "
            "while `spanline up` runs, --tier cold always in this process."
        ),
    )
    p.add_argument("sql", help='the statement, e.g. "SELECT name, count() FROM spans GROUP BY name"')
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("--no-final", action="store_true", help="raw rows: replays may show until merges run")
    p.add_argument(
        "--tier",
        choices=["hot", "cold", "all"],
        default="hot",
        help="hot: ClickHouse; cold: Iceberg (spans, scores); all: hot rows at or after the hot TTL's "
        "boundary (now - retention.hot_days) plus cold rows before it, each span once",
    )
    _config_arg(p)
    p.set_defaults(func=_cmd_query)

    p = subparsers.add_parser(
        "trace",
        help="print one trace as a span tree with timings, cost and scores (hot tier, else the cold tier)",
    )
    p.add_argument("trace_id", help="32 hex characters")
    p.add_argument("--json", action="store_true", help="machine-readable, payloads inlined")
    p.add_argument("--project", default=None, help="only this project's spans")
    _config_arg(p)
    p.set_defaults(func=_cmd_trace)
