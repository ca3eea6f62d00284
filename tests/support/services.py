"""Run our real services for tests: in a background thread (fast) or as a child process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from spanline.core.service import Component


class ServiceThread:
    """A component on its own event loop in a thread, so sync clients (the OTel SDK) can
    call it from the test thread without blocking its loop."""

    def __init__(self, component: Component) -> None:
        self.component = component
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._run: Any = None

    def __enter__(self) -> ServiceThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.component.start(), self.loop).result(30)
        self._run = asyncio.run_coroutine_threadsafe(self.component.run(), self.loop)
        return self

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self.component.stop(), 60)
            if self._run is not None:
                self._run.result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)


class ServiceProcess:
    """`spanline run <service>` as a child process with the given environment."""

    def __init__(
        self,
        service: str,
        env: dict[str, str],
        http_port: int,
        log_path: Path,
        module: str = "spanline.cli.main",
    ) -> None:
        self.service = service
        self.module = module
        self.env = {**os.environ, **env}
        self.http_port = http_port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_ready: bool = True, timeout: float = 30) -> ServiceProcess:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                self.module,
                "run",
                self.service,
                "--http-port",
                str(self.http_port),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.service} exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.http_port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.service} not ready:\n{self.log_path.read_text()[-3000:]}")

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5).text

    def terminate(self, timeout: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")
