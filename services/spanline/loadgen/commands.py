"""``spanline loadgen``: offer GenAI trace load to an OTLP/gRPC endpoint and report what came back."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Callable
from typing import TextIO

from spanline.loadgen.genai_traces import PROFILES
from spanline.loadgen.runner import LoadgenConfig, LoadgenResult, TargetUnreachable, run_load

_TARGET = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-_]+):(\d{1,5})$")


def _target(value: str) -> str:
    match = _TARGET.match(value)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (e.g. 127.0.0.1:4317), got {value!r}")
    return value


def _whole(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= `minimum`, with a message naming what was given."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {number}")
        return number

    return parse


_positive_int = _whole(1)
_non_negative_int = _whole(0)


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {value!r}")
    return number


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "loadgen",
        help="send realistic GenAI traces to an OTLP/gRPC endpoint and report throughput",
        description=(
            "Sends OTLP/gRPC trace exports (invoke_agent / chat / execute_tool spans following the "
            "OpenTelemetry GenAI conventions) and prints acknowledged spans/s, Export latency and "
            "errors. Stops after --spans, after --duration, or whichever comes first."
        ),
    )
    parser.add_argument("--target", type=_target, default="127.0.0.1:4317", help="HOST:PORT of ingest")
    parser.add_argument("--spans", type=_positive_int, default=None, help="total spans to send")
    parser.add_argument("--duration", type=_positive_float, default=None, help="stop after SECONDS")
    parser.add_argument("--concurrency", type=_positive_int, default=8, help="concurrent Export calls")
    parser.add_argument("--batch", type=_positive_int, default=100, help="spans per Export request")
    parser.add_argument("--gzip", action="store_true", help="gzip-compress requests")
    parser.add_argument("--api-key", default=None, help="sent as 'authorization: Bearer KEY'")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the generated traces")
    parser.add_argument("--pii", action="store_true", help="plant synthetic PII in message content")
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="default",
        help="default: OTel GenAI spans, 1-8 a trace (~1.4 KB); heavy: 5-span agent runs, every span "
        "with OTel GenAI and OpenInference attributes (~2.5 KB)",
    )
    parser.add_argument("--timeout", type=_positive_float, default=10.0, help="per-Export deadline, seconds")
    parser.add_argument(
        "--max-retries", type=_non_negative_int, default=5, help="retries on UNAVAILABLE/RESOURCE_EXHAUSTED"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run_command, _parser=parser)


def run_command(args: argparse.Namespace) -> int:
    """Entry for ``spanline loadgen``; exit 0 when every request was acknowledged, 1 otherwise."""
    if args.spans is None and args.duration is None:
        args._parser.error("give --spans N, --duration SECONDS, or both")
    config = LoadgenConfig(
        target=args.target,
        total_spans=args.spans,
        duration_s=args.duration,
        concurrency=args.concurrency,
        batch=args.batch,
        gzip=args.gzip,
        api_key=args.api_key,
        seed=args.seed,
        plant_pii=args.pii,
        profile=args.profile,
        timeout_s=args.timeout,
        max_retries=args.max_retries,
    )
    try:
        result = _run_with_progress(config)
    except TargetUnreachable as exc:
        print(
            f"spanline loadgen: {exc}. Is `spanline up` running? Its banner names the OTLP/gRPC "
            "port (ingest.port, SPANLINE_INGEST_PORT, default 4317); pass it with --target HOST:PORT.",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_table(result, sys.stdout)
    if result.requests_ok == 0 and result.requests_failed:
        details = "; ".join(f"{code}: {text}" for code, text in sorted(result.error_details.items()) if text)
        why = f" ({details})" if details else ""
        print(f"spanline loadgen: nothing was delivered to {config.target}{why}", file=sys.stderr)
    return 0 if result.requests_failed == 0 else 1


def _run_with_progress(config: LoadgenConfig) -> LoadgenResult:
    """The run with a rich progress bar on stderr (spans settled of --spans, or seconds of
    --duration); rich draws nothing when stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    by_spans = config.total_spans is not None
    total = float(config.total_spans) if config.total_spans is not None else float(config.duration_s or 0)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"loadgen -> {config.target}", total=total, status="connecting")

        def show(result: LoadgenResult, elapsed: float) -> None:
            settled = result.spans_acked + result.spans_rejected + result.spans_failed
            status = f"{result.spans_acked:,} acked, {result.spans_failed:,} failed"
            bar.update(task, completed=settled if by_spans else min(elapsed, total), status=status)

        return asyncio.run(run_load(config, progress=show))


def print_table(result: LoadgenResult, out: TextIO) -> None:
    rows: list[tuple[str, str]] = [
        ("spans sent", f"{result.spans_sent}"),
        ("spans acked", f"{result.spans_acked}"),
        ("spans rejected (partial_success)", f"{result.spans_rejected}"),
        ("spans failed", f"{result.spans_failed}"),
        ("requests ok / failed", f"{result.requests_ok} / {result.requests_failed}"),
        ("retries", _counts(result.retries, result.retries_by_code)),
        ("errors", _counts(result.requests_failed, result.errors_by_code)),
        ("elapsed", f"{result.elapsed_s:.2f} s"),
        ("acked spans/s", f"{result.spans_per_s:,.0f}"),
        ("offered spans/s", f"{result.offered_spans_per_s:,.0f}"),
        ("Export latency p50", _ms(result.latency_p50_ms)),
        ("Export latency p99", _ms(result.latency_p99_ms)),
        ("Export latency max", _ms(result.latency_max_ms)),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        out.write(f"{name:<{width}}  {value}\n")
    for message in result.rejection_messages:
        out.write(f"rejection: {message}\n")


def _ms(value: float | None) -> str:
    return "- (no Export succeeded)" if value is None else f"{value:.1f} ms"


def _counts(total: int, by_code: dict[str, int]) -> str:
    if not by_code:
        return str(total)
    detail = ", ".join(f"{code}={n}" for code, n in sorted(by_code.items()))
    return f"{total} ({detail})"
