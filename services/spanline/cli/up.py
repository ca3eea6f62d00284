"""`spanline up`: the whole pipeline on one machine, the quick start.

Each service runs as its own `spanline run <service>` child process, as in production
(one consumer group each, own /metrics port), so what works here works on Kubernetes.
A child that dies is restarted with backoff, unless it exits with the permanent
start-up code (a port taken, a data directory held elsewhere): then `up` says why and
stops. Ctrl-C drains (see :mod:`spanline.cli.drain`): sources first, then each stage
once its input lag is zero, the broker last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from spanline.cli.drain import Drain, Leftover
from spanline.components import ServiceSpec, available_services
from spanline.core.logging import JsonFormatter
from spanline.core.process_lifetime import die_with_parent
from spanline.core.startup import EXIT_PERMANENT, StartupError, check_port_free
from spanline.settings import Settings, load_settings

# The metrics port of ingest by default; every service keeps its ServiceSpec.http_port
# shifted by --http-base-port minus this.
DEFAULT_HTTP_BASE = 9464
_READY_TIMEOUT_S = 90.0

log = logging.getLogger("spanline.up")


@dataclass
class _Child:
    spec: ServiceSpec
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default_factory=time.monotonic)
    ports: dict[str, Any] = field(default_factory=dict)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "up",
        parents=[common],
        help="start the whole pipeline locally (bundled broker unless SPANLINE_KAFKA_BOOTSTRAP is set)",
        description=(
            "Starts the bundled broker, creates the topics and runs every service as a child process. "
            "Ctrl-C drains: ingest stops accepting, each later stage runs until its input is consumed "
            "(at most --drain-timeout seconds), then the broker stops. Exit code 78: a permanent "
            "start-up error (port in use, data directory in use, broker unreachable)."
        ),
    )
    p.add_argument(
        "--broker-port", type=int, default=0, help="port for the bundled broker (default: a free one)"
    )
    p.add_argument(
        "--http-base-port",
        type=int,
        default=DEFAULT_HTTP_BASE,
        help=(
            f"/metrics port of ingest (default {DEFAULT_HTTP_BASE}); the others follow from it "
            "(0 = ephemeral ports, printed once they listen)"
        ),
    )
    p.add_argument(
        "--services",
        default="",
        help="comma-separated subset of services to run (default: all that exist)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="on Ctrl-C, how long stages may take to consume what is queued (default 120)",
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
    supervisor = _Supervisor(
        settings, specs, args.config, args.broker_port, args.http_base_port, args.drain_timeout
    )
    return supervisor.run()


class _Supervisor:
    def __init__(
        self,
        settings: Settings,
        specs: list[ServiceSpec],
        config: str | None,
        broker_port: int,
        http_base: int,
        drain_timeout_s: float,
    ) -> None:
        self.settings = settings
        shift = http_base - DEFAULT_HTTP_BASE
        self.http_ports = {spec.name: (spec.http_port + shift if http_base else 0) for spec in specs}
        self.specs = specs
        self.config = config
        self.broker_port = broker_port
        self.drain_timeout_s = drain_timeout_s
        self.children = [_Child(spec) for spec in specs]
        self.stopping = False
        self.failed: tuple[str, str] | None = None  # (service, reason) of a permanent failure
        self.data_dir = Path(settings.data_dir).resolve()
        self.run_dir = self.data_dir / "run"
        self._lock: IO[str] | None = None

    # -- errors a person can act on ------------------------------------------------------
    def _fail(self, exc: StartupError, service: str = "up") -> int:
        print(f"spanline up: {exc}", file=sys.stderr, flush=True)
        log.error(
            "permanent start-up error",
            extra={"component": service, "kind": exc.kind, "reason": str(exc), "exit_code": EXIT_PERMANENT},
        )
        return EXIT_PERMANENT

    def _setup_log(self) -> None:
        handler = logging.FileHandler(self.data_dir / "up.log", encoding="utf-8")
        handler.setFormatter(JsonFormatter("up"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False

    def _take_data_dir(self) -> None:
        """One `up` per data directory: the embedded engine admits one process anyway, and a
        second pipeline would otherwise print a banner and then crash-loop every service."""
        lock = open(self.data_dir / "up.lock", "a+", encoding="utf-8")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            lock.close()
            raise StartupError(
                f"data directory {self.data_dir} is in use by another `spanline up` (pid {holder}): "
                "stop that one, or give this one its own directory with SPANLINE_DATA_DIR=/other/dir",
                kind="data_dir_locked",
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        self._lock = lock

    def _check_ports(self) -> None:
        """Every port this run will listen on, before anything starts."""
        host = self.settings.http.host
        for name, port in self.http_ports.items():
            check_port_free(host, port, "", f"--http-base-port (the {name} metrics port)")
        if not self.settings.kafka.bootstrap and self.broker_port:
            check_port_free("127.0.0.1", self.broker_port, "", "--broker-port")
        for spec in self.specs:  # every *port setting of the sections of the services we run
            section = getattr(self.settings, spec.name, None)
            if section is None:
                continue
            for key in type(section).model_fields:
                value = getattr(section, key)
                if not (key == "port" or key.endswith("_port")) or not isinstance(value, int) or not value:
                    continue
                if key == "http_port":  # metrics ports: given by --http-base-port under up, checked above
                    continue
                bind = getattr(section, key[: -len("port")] + "host", None) or getattr(section, "host", None)
                check_port_free(str(bind or "127.0.0.1"), value, f"{spec.name}.{key}")

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> int:
        from spanline.core.broker import BrokerError, BundledBroker

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._setup_log()
        try:
            self._take_data_dir()
            self._check_ports()
        except StartupError as exc:
            return self._fail(exc)
        self.run_dir.mkdir(exist_ok=True)
        for stale in self.run_dir.glob("*.ports.json"):
            stale.unlink()
        broker: BundledBroker | None = None
        bootstrap = self.settings.kafka.bootstrap
        if not bootstrap:
            broker = BundledBroker(port=self.broker_port, log_path=self.data_dir / "broker.log")
            try:
                broker.start()
            except BrokerError as exc:
                return self._fail(StartupError(f"the bundled broker did not start: {exc}", kind="broker"))
            bootstrap = broker.bootstrap
            _say(f"bundled broker (Tansu, memory storage) on {bootstrap}")
        env = dict(os.environ)
        env["SPANLINE_KAFKA_BOOTSTRAP"] = bootstrap
        env["SPANLINE_DATA_DIR"] = str(self.data_dir)
        if broker is not None:
            # the in-memory broker loses what the scorer still holds when it stops
            env.setdefault("SPANLINE_SCORER_CLOSE_OPEN_ON_STOP", "true")
        code = 0
        try:
            try:
                self._create_topics(bootstrap, external=broker is None)
            except StartupError as exc:
                return self._fail(exc)
            # SIGHUP too: a closed terminal must drain the services like Ctrl-C, not orphan them
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(signum, self._on_signal)
            for child in self.children:
                self._spawn(child, env)
            if self._wait_until_listening(env):
                self._banner(bootstrap)
                self._publish_state()
                while not self.stopping and self.failed is None:
                    time.sleep(0.25)
                    self._watch(env)
        finally:
            leftovers = self._drain(bootstrap, env)
            if broker is not None:
                broker.stop()
                _say("broker stopped")
            self._unpublish_state()
            if self._lock is not None:
                self._lock.close()
        if self.failed is not None:
            service, reason = self.failed
            return self._fail(StartupError(f"{service} cannot start: {reason}", kind="service"), service)
        if leftovers:
            where = "lost with the in-memory broker" if broker is not None else "still in Kafka"
            detail = ", ".join(f"{x.topic} {x.records:,} ({x.service})" for x in leftovers)
            _say(f"records left unprocessed ({where}): {detail}")
            log.error(
                "drain incomplete",
                extra={"left": {f"{x.topic}/{x.group}": x.records for x in leftovers}},
            )
            code = 1
        return code

    def _create_topics(self, bootstrap: str, external: bool) -> None:
        from spanline.core.kafka.admin import create_topics

        kafka = self.settings.kafka.model_copy(update={"bootstrap": bootstrap})
        deadline = time.monotonic() + (15 if external else 30)
        while True:
            try:
                report = asyncio.run(create_topics(kafka, self.settings.topics, self.settings.retention))
                _say(f"topics: {len(report.created)} created, {len(report.existing)} already there")
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    where = (
                        "kafka.bootstrap (SPANLINE_KAFKA_BOOTSTRAP)"
                        if external
                        else "the bundled broker (see broker.log)"
                    )
                    raise StartupError(
                        f"cannot reach Kafka at {bootstrap} ({type(exc).__name__}): check {where}",
                        kind="broker_unreachable",
                    ) from None
                time.sleep(1)

    def _ports_file(self, child: _Child) -> Path:
        return self.run_dir / f"{child.spec.name}.ports.json"

    def _spawn(self, child: _Child, env: dict[str, str]) -> None:
        port = self.http_ports[child.spec.name]
        ports_file = self._ports_file(child)
        with contextlib.suppress(FileNotFoundError):
            ports_file.unlink()
        cmd = [sys.executable, "-m", "spanline.cli.main", "run", child.spec.name, "--http-port", str(port)]
        cmd += ["--ports-file", str(ports_file)]
        if self.config:
            cmd += ["--config", self.config]
        log_file = open(self.data_dir / f"{child.spec.name}.log", "ab")
        # Own process group: a terminal's Ctrl-C goes to the whole foreground group, and the
        # services would all stop at once (and be signalled again mid-shutdown) instead of being
        # drained one after the other, ingest first, while the in-memory broker still runs.
        child.proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=die_with_parent,  # a killed supervisor leaves no orphaned pipeline
        )
        log_file.close()
        child.started_at = time.monotonic()

    def _wait_until_listening(self, env: dict[str, str]) -> bool:
        """Until every child wrote its ports file (it does so once it accepts)."""
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while not self.stopping and self.failed is None:
            pending = [c for c in self.children if not c.ports]
            for child in pending:
                path = self._ports_file(child)
                if path.exists():
                    with contextlib.suppress(OSError, ValueError):
                        child.ports = json.loads(path.read_text(encoding="utf-8"))
            if all(c.ports for c in self.children):
                return True
            if time.monotonic() > deadline:
                names = ", ".join(c.spec.name for c in self.children if not c.ports)
                _say(f"still waiting for {names} to listen; see their logs under {self.data_dir}")
                deadline = time.monotonic() + _READY_TIMEOUT_S
            self._watch(env)
            time.sleep(0.1)
        return False

    def _watch(self, env: dict[str, str]) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.proc is None:
                if now >= child.next_start and not self.stopping:
                    self._spawn(child, env)
                continue
            code = child.proc.poll()
            if code is None:
                if now - child.started_at > 60:
                    child.restarts = 0
                continue
            child.proc = None
            child.ports = {}
            if code == EXIT_PERMANENT:
                reason = self._child_reason(child) or f"exit code {code}"
                self.failed = (child.spec.name, reason)
                _say(f"{child.spec.name} cannot start: {reason}; not restarting it, stopping")
                return
            delay = min(30.0, 1.0 * 2**child.restarts)
            child.restarts += 1
            child.next_start = now + delay
            _say(
                f"{child.spec.name} exited with code {code}; restarting in {delay:.0f}s "
                f"(log: {self.data_dir / (child.spec.name + '.log')})"
            )

    def _child_reason(self, child: _Child) -> str:
        """The human line a child printed for its permanent error (`spanline <name>: ...`)."""
        prefix = f"spanline {child.spec.name}: "
        try:
            with open(self.data_dir / f"{child.spec.name}.log", "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 16384))
                tail = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        for line in reversed(tail):
            if line.startswith(prefix):
                return line[len(prefix) :]
        return ""

    def _keep_alive(self, child: _Child, env: dict[str, str]) -> None:
        if child.proc is not None and child.proc.poll() is None:
            return
        code = child.proc.poll() if child.proc is not None else None
        if code == EXIT_PERMANENT or self.failed is not None:
            return
        _say(f"{child.spec.name} is not running while draining; starting it again")
        self._spawn(child, env)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _stop_group(self, children: list[_Child]) -> None:
        live = [c for c in children if c.proc is not None and c.proc.poll() is None]
        for child in live:
            assert child.proc is not None
            child.proc.send_signal(signal.SIGTERM)
        budget = self.settings.shutdown_grace_s + 10
        for child in live:
            assert child.proc is not None
            try:
                child.proc.wait(timeout=budget)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
            _say(f"{child.spec.name} stopped (exit {child.proc.returncode})")

    def _drain(self, bootstrap: str, env: dict[str, str]) -> list[Leftover]:
        # a second Ctrl-C during the drain must not kill `up` halfway and orphan the children
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        if not any(c.running() for c in self.children):
            return []
        _say("stopping: ingest first, then each stage once its input is consumed")
        drain = Drain(
            kafka=self.settings.kafka.model_copy(update={"bootstrap": bootstrap}),
            topics=self.settings.topics,
            children=self.children,
            stop=lambda cs: self._stop_group(cs),  # type: ignore[arg-type]
            keep_alive=lambda c: self._keep_alive(c, env),  # type: ignore[arg-type]
            say=_say,
            timeout_s=self.drain_timeout_s if self.failed is None else 0.0,
        )
        return drain.run()

    # -- what people read ------------------------------------------------------------------
    def _banner(self, bootstrap: str) -> None:
        ingest = next((c for c in self.children if c.spec.name == "ingest"), None)
        if ingest is not None:
            endpoints = ingest.ports.get("endpoints") or {}
            grpc_addr = (
                endpoints.get("OTLP/gRPC") or f"{self.settings.ingest.host}:{self.settings.ingest.port}"
            )
            _say(
                f"OTLP/gRPC ingest on {grpc_addr}  (export with OTEL_EXPORTER_OTLP_ENDPOINT=http://{grpc_addr})"
            )
            for name, address in endpoints.items():
                if name != "OTLP/gRPC":
                    _say(f"{name} ingest on {address}")
        host = self.settings.http.host
        for child in self.children:
            _say(
                f"  {child.spec.name:<9} {child.spec.summary}   "
                f"metrics http://{host}:{child.ports.get('http_port')}/metrics"
            )
        query = self._query_url()
        if query:
            _say(f'read-only queries: spanline query "SELECT ..." (endpoint {query})')
        _say(f"logs and data under {self.data_dir}; Ctrl-C stops everything")

    def _query_url(self) -> str:
        writer = next((c for c in self.children if c.spec.name == "writer"), None)
        if writer is None:
            return ""
        return str((writer.ports.get("endpoints") or {}).get("query", ""))

    def _publish_state(self) -> None:
        from spanline.core.up_state import UpState, write_state

        with contextlib.suppress(OSError):
            write_state(UpState(os.getpid(), str(self.data_dir), self._query_url(), time.time()))

    def _unpublish_state(self) -> None:
        from spanline.core.up_state import remove_state

        remove_state(os.getpid())


def _say(text: str) -> None:
    print(f"[spanline up] {text}", flush=True)
