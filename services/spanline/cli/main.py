"""The `spanline` command: one entry point for every service and tool."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from spanline import __version__
from spanline.cli import up as up_cmd
from spanline.settings import ConfigError, Settings, load_settings, masked_dump

# Areas that register their own sub-commands (each has `add_commands(subparsers)`).
_COMMAND_MODULES = (
    "spanline.redactor.commands",
    "spanline.writer.commands",
    "spanline.query.commands",
    "spanline.coldtier.commands",
    "spanline.loadgen.commands",
    "spanline.alerter.commands",
    "spanline.scorer.commands",
)

log = logging.getLogger("spanline.cli")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None))


def cmd_run(args: argparse.Namespace) -> int:
    from spanline.components import SERVICES
    from spanline.core.logging import setup_logging
    from spanline.core.process_memory import arrow_pool_from_glibc, keep_pandas_out
    from spanline.core.service import run_component

    keep_pandas_out()  # before any service module imports pyarrow or chdb
    arrow_pool_from_glibc()  # before Arrow's first allocation picks its C++ default pool
    spec = SERVICES[args.service]
    settings = _settings(args)
    setup_logging(settings.log.level, settings.log.format, service=spec.name)
    if not spec.available():
        print(f"spanline: service {spec.name!r} is not part of this build", file=sys.stderr)
        return 2
    component = spec.factory()(settings)
    port = settings.http.port or spec.http_port
    if args.http_port is not None:
        port = args.http_port
    ports_file = Path(args.ports_file) if args.ports_file else None
    return asyncio.run(
        run_component(
            component, settings.http.host, port, grace_s=settings.shutdown_grace_s, ports_file=ports_file
        )
    )


def cmd_broker(args: argparse.Namespace) -> int:
    from spanline.core.broker import BrokerError, BundledBroker

    broker = BundledBroker(port=args.port, host="127.0.0.1")
    try:
        broker.start()
    except BrokerError as exc:
        print(f"spanline broker: {exc}", file=sys.stderr)
        return 1
    print(f"broker listening on {broker.bootstrap} (memory storage; Ctrl-C stops it)", flush=True)
    try:
        return broker.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()


def cmd_topics_create(args: argparse.Namespace) -> int:
    from spanline.core.kafka.admin import create_topics

    settings = _settings(args)
    try:
        report = asyncio.run(create_topics(settings.kafka, settings.topics, settings.retention))
    except Exception as exc:
        print(f"spanline topics create: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for name in report.created:
        print(f"created  {name}")
    for name in report.existing:
        print(f"exists   {name}")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    data = masked_dump(settings)
    if args.format == "json":
        print(json.dumps(data, indent=2, default=str))
    else:
        import yaml

        print(yaml.safe_dump(data, sort_keys=False), end="")
    return 0


def cmd_config_reference(args: argparse.Namespace) -> int:
    from spanline.config_reference import render

    print(render(), end="")
    return 0


def cmd_hash_key(args: argparse.Namespace) -> int:
    from spanline.ingest.config import hash_api_key

    key = args.key if args.key is not None else sys.stdin.readline().strip()
    if not key:
        print("spanline hash-key: empty key", file=sys.stderr)
        return 2
    print(hash_api_key(key))
    return 0


def cmd_gen_key(args: argparse.Namespace) -> int:
    from spanline.core.envelope import new_key

    print(new_key())
    return 0


def build_parser() -> argparse.ArgumentParser:
    from spanline.components import SERVICES

    parser = argparse.ArgumentParser(
        prog="spanline",
        description="Pipeline for LLM and agent traces: OTLP in, redacted, stored hot and cold.",
    )
    parser.add_argument("--version", action="version", version=f"spanline {__version__}")
    # Also accepted before the command (`spanline --config f.yaml up`); the command's own
    # --config, when given, wins. A separate dest: a sub-parser's default would overwrite it.
    parser.add_argument(
        "--config",
        dest="config_before_command",
        metavar="FILE",
        help="YAML settings file (before or after COMMAND)",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="YAML settings file (also SPANLINE_CONFIG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", parents=[common], help="run one service in the foreground")
    p.add_argument("service", choices=sorted(SERVICES), help="which service")
    p.add_argument("--http-port", type=int, default=None, help="port for /metrics /healthz /readyz")
    p.add_argument("--ports-file", default=None, help=argparse.SUPPRESS)  # written for `spanline up`
    p.set_defaults(func=cmd_run)

    up_cmd.add_parser(sub, common)

    p = sub.add_parser("broker", help="run the bundled Kafka-compatible broker (Tansu, memory storage)")
    p.add_argument("--port", type=int, default=9092, help="listen port on 127.0.0.1 (default 9092)")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("topics", help="manage the Kafka topics (raw, redacted, scores, alerts, DLQs)")
    tsub = p.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    tp = tsub.add_parser("create", parents=[common], help="create missing topics (idempotent)")
    tp.set_defaults(func=cmd_topics_create)

    p = sub.add_parser("config", help="inspect settings")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    cp = csub.add_parser("show", parents=[common], help="print effective settings, secrets masked")
    cp.add_argument("--format", choices=["yaml", "json"], default="yaml")
    cp.set_defaults(func=cmd_config_show)
    cr = csub.add_parser("reference", help="print the Markdown reference of every setting")
    cr.set_defaults(func=cmd_config_reference)

    p = sub.add_parser("hash-key", help="print the digest to put in ingest.api_keys for an API key")
    p.add_argument("key", nargs="?", help="the key (read from stdin when omitted, which keeps it out of ps)")
    p.set_defaults(func=cmd_hash_key)

    p = sub.add_parser("gen-key", help="print a new random raw-topic encryption key (base64)")
    p.set_defaults(func=cmd_gen_key)

    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("spanline"):
                continue
            raise
        module.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None) is None and args.config_before_command is not None:
        args.config = args.config_before_command
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except ConfigError as exc:
        print(f"spanline: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `spanline trace ... | head`: the reader has all it wanted; end quietly, and keep
        # Python's exit-time flush from raising again on the closed descriptor
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
