"""`spanline up`: the whole pipeline on one machine, the quick start of DESIGN.md.

Each service runs as its own `spanline run <service>` child process, as in production
(one consumer group each, own /metrics port), so what works here works on Kubernetes.
A child that dies is restarted with backoff; Ctrl-C drains them in flow order
(ingest first, so nothing new arrives while downstream flushes) and then stops the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from spanline.components import ServiceSpec, available_services
from spanline.settings import Settings, load_settings


@dataclass
class _Child:
    spec: ServiceSpec
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default_factory=time.monotonic)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "up",
        parents=[common],
        help="start the whole pipeline locally (bundled broker unless SPANLINE_KAFKA_BOOTSTRAP is set)",
    )
    p.add_argument(
        "--broker-port", type=int, default=0, help="port for the bundled broker (default: a free one)"
    )
    p.add_argument(
        "--http-base-port",
        type=int,
        default=9464,
        help="/metrics port of the first service; the others count up from it (0 = ephemeral ports)",
    )
    p.add_argument(
        "--services",
        default="",
        help="comma-separated subset of services to run (default: all that exist)",
    )
    p.set_defaults(func=cmd_up)


def cmd_up(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    wanted = {s.strip() for s in args.services.split(",") if s.strip()}
    specs = [s for s in available_services() if not wanted or s.name in wanted]
    unknown = wanted - {s.name for s in available_services()}
    if unknown:
        print(f"spanline up: unknown services: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    return _Supervisor(settings, specs, args.config, args.broker_port, args.http_base_port).run()


class _Supervisor:
    def __init__(
        self,
        settings: Settings,
        specs: list[ServiceSpec],
        config: str | None,
        broker_port: int,
        http_base: int,
    ) -> None:
        self.settings = settings
        self.http_ports = {spec.name: (http_base + i if http_base else 0) for i, spec in enumerate(specs)}
        self.specs = specs
        self.config = config
        self.broker_port = broker_port
        self.children = [_Child(spec) for spec in specs]
        self.stopping = False

    def run(self) -> int:
        from spanline.core.broker import BrokerError, BundledBroker

        data_dir = Path(self.settings.data_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        broker: BundledBroker | None = None
        bootstrap = self.settings.kafka.bootstrap
        if not bootstrap:
            broker = BundledBroker(port=self.broker_port, log_path=data_dir / "broker.log")
            try:
                broker.start()
            except BrokerError as exc:
                print(f"spanline up: {exc}", file=sys.stderr)
                return 1
            bootstrap = broker.bootstrap
            _say(f"bundled broker (Tansu, memory storage) on {bootstrap}")
        env = dict(os.environ)
        env["SPANLINE_KAFKA_BOOTSTRAP"] = bootstrap
        env["SPANLINE_DATA_DIR"] = str(data_dir)
        try:
            self._create_topics(bootstrap)
            # SIGHUP too: a closed terminal must drain the services like Ctrl-C, not orphan them
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(signum, self._on_signal)
            for child in self.children:
                self._spawn(child, env, data_dir)
            self._banner(bootstrap)
            while not self.stopping:
                time.sleep(0.25)
                self._watch(env, data_dir)
        finally:
            self._stop_children()
            if broker is not None:
                broker.stop()
                _say("broker stopped")
        return 0

    def _create_topics(self, bootstrap: str) -> None:
        from spanline.core.kafka.admin import create_topics

        kafka = self.settings.kafka.model_copy(update={"bootstrap": bootstrap})
        deadline = time.monotonic() + 30
        while True:
            try:
                report = asyncio.run(create_topics(kafka, self.settings.topics, self.settings.retention))
                _say(f"topics: {len(report.created)} created, {len(report.existing)} already there")
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cannot create topics on {bootstrap}: {exc}") from None
                time.sleep(1)

    def _spawn(self, child: _Child, env: dict[str, str], data_dir: Path) -> None:
        port = self.http_ports[child.spec.name]
        cmd = [sys.executable, "-m", "spanline.cli.main", "run", child.spec.name, "--http-port", str(port)]
        if self.config:
            cmd += ["--config", self.config]
        log = open(data_dir / f"{child.spec.name}.log", "ab")
        # Own process group: a terminal's Ctrl-C goes to the whole foreground group, and the
        # services would all stop at once (and be signalled again mid-shutdown) instead of being
        # drained one after the other, ingest first, while the in-memory broker still runs.
        child.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, process_group=0)
        log.close()
        child.started_at = time.monotonic()

    def _watch(self, env: dict[str, str], data_dir: Path) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.proc is None:
                if now >= child.next_start:
                    self._spawn(child, env, data_dir)
                continue
            code = child.proc.poll()
            if code is None:
                if now - child.started_at > 60:
                    child.restarts = 0
                continue
            child.proc = None
            delay = min(30.0, 1.0 * 2**child.restarts)
            child.restarts += 1
            child.next_start = now + delay
            _say(
                f"{child.spec.name} exited with code {code}; restarting in {delay:.0f}s "
                f"(log: {data_dir / (child.spec.name + '.log')})"
            )

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _stop_children(self) -> None:
        _say("stopping: draining services")
        for child in reversed(self.children):  # ingest first
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
                try:
                    child.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait()
                _say(f"{child.spec.name} stopped (exit {child.proc.returncode})")

    def _banner(self, bootstrap: str) -> None:
        ingest = self.settings.ingest
        _say(
            f"OTLP/gRPC ingest on {ingest.host}:{ingest.port}  (export with OTEL_EXPORTER_OTLP_ENDPOINT=http://{ingest.host}:{ingest.port})"
        )
        for child in self.children:
            _say(
                f"  {child.spec.name:<9} {child.spec.summary}   metrics http://127.0.0.1:{child.spec.http_port}/metrics"
            )
        _say(f"logs and data under {Path(self.settings.data_dir).resolve()}; Ctrl-C stops everything")


def _say(text: str) -> None:
    print(f"[spanline up] {text}", flush=True)
