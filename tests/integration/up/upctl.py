"""`spanline up` as a user runs it, as a child process on free ports, for the up tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from spanline.core.broker import free_port


def up_env(tmp_path: Path, data_dir: Path | None = None) -> dict[str, str]:
    """A clean environment: no SPANLINE_* of the caller, free ports, a private runtime dir."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(exist_ok=True)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SPANLINE_")},
        "SPANLINE_DATA_DIR": str(data_dir or tmp_path / "data"),
        "SPANLINE_INGEST_PORT": str(free_port()),
        "SPANLINE_WRITER_QUERY_PORT": str(free_port()),
        "SPANLINE_INGEST_OTLP_HTTP_PORT": str(free_port()),
        "SPANLINE_WRITER_BATCH_MAX_WAIT_S": "0.3",
        "XDG_RUNTIME_DIR": str(runtime),
    }


def spanline(
    *args: str, env: dict[str, str], timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spanline.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


class Up:
    """`spanline up` in its own process group (as a shell runs a foreground job)."""

    def __init__(self, env: dict[str, str], *extra: str) -> None:
        self.env = env
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spanline.cli.main", "up", "--http-base-port", "0", *extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.out = ""
        self.err = ""

    def wait_banner(self, timeout: float = 120) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                break
            self.lines.append(line)
            if "Ctrl-C stops everything" in line:
                return "".join(self.lines)
        self.proc.kill()
        out, err = self.proc.communicate(timeout=30)
        raise AssertionError("no banner:\n" + "".join(self.lines) + out + err)

    def interrupt(self, timeout: float = 240) -> int:
        """Ctrl-C in a terminal: SIGINT to the whole foreground group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.wait(timeout)

    def wait(self, timeout: float = 240) -> int:
        out, err = self.proc.communicate(timeout=timeout)
        self.out = "".join(self.lines) + out
        self.err = err
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    @property
    def bootstrap(self) -> str:
        """The bundled broker's address, from the banner."""
        line = next(x for x in self.lines if "bundled broker" in x)
        return line.split(" on ", 1)[1].split()[0]

    @property
    def ingest_target(self) -> str:
        return f"127.0.0.1:{self.env['SPANLINE_INGEST_PORT']}"
