"""CLI commands of the scorer: `spanline quality`."""

from __future__ import annotations

import argparse
import json
import sys

from spanline.settings import load_settings


def run_quality(
    config: str | None,
    *,
    since: str = "24h",
    project: str | None = None,
    evaluator: str | None = None,
    fmt: str = "table",
) -> int:
    from spanline.query.client import QueryError, open_backend
    from spanline.scorer.judging.quality import fetch_quality, render_quality, window_seconds

    settings = load_settings(config)
    try:
        since_s = window_seconds(since)
        backend = open_backend(settings)
        try:
            rows = fetch_quality(backend, since_s=since_s, project=project, evaluator=evaluator)
        finally:
            backend.close()
    except QueryError as exc:
        print(f"spanline quality: {exc}", file=sys.stderr)
        return 1
    if fmt == "json":
        doc = {"window_s": since_s, "estimates": [r.to_dict() for r in rows]}
        sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
    else:
        print(render_quality(rows, since))
    return 0


def _cmd_quality(args: argparse.Namespace) -> int:
    return run_quality(
        args.config, since=args.since, project=args.project, evaluator=args.evaluator, fmt=args.format
    )


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "quality",
        help="LLM-judge pass rates per project and evaluator, weighted to the whole traffic, with 95%% CIs",
        description=(
            "Estimates each evaluator's pass rate over ALL traces of the window, not just the judged "
            "ones: judged verdicts are post-stratified by sampling stratum (route x model x "
            "environment, tail strata) with population counts from the judge's sampling records, "
            "weighted by 1/inclusion probability. Prints the estimate, a 95% interval (Wilson on the "
            "effective sample size; Korn-Graubard when a stratum has < 30 judged traces), the "
            "effective sample size, judge errors (nonresponse) and a low-precision flag. The "
            "unweighted mean of judged verdicts is biased toward tail traces and is never shown."
        ),
    )
    p.add_argument("--since", default="24h", help="window ending now: 30m, 24h, 7d (default 24h)")
    p.add_argument("--project", default=None, help="only this project")
    p.add_argument("--evaluator", default=None, help="only this evaluator")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--config", metavar="FILE", help="YAML settings file (also SPANLINE_CONFIG)")
    p.set_defaults(func=_cmd_quality)
