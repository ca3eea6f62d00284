"""Start-up failures a person can act on, and the exit code that says "do not restart".

A port already taken or a data directory held by another process will not heal by
restarting: a supervisor that restarts such a child only hides the reason in a log. A
service that hits one raises :class:`StartupError`; the runner prints one human line on
stderr, logs one JSON line, and exits with :data:`EXIT_PERMANENT` (sysexits' EX_CONFIG),
which `spanline up` (and a Kubernetes operator reading the code) treats as permanent.
"""

from __future__ import annotations

import errno
import socket

EXIT_PERMANENT = 78


class StartupError(Exception):
    """A permanent start-up error; ``str()`` is the one line a person reads."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def env_var(setting: str) -> str:
    """`writer.query_port` -> `SPANLINE_WRITER_QUERY_PORT`."""
    return "SPANLINE_" + setting.replace(".", "_").upper()


def port_in_use(host: str, port: int, setting: str, flag: str | None = None) -> StartupError:
    ways = [f"use {flag}"] if flag else []
    if setting:
        ways.append(f"set {setting} ({env_var(setting)})")
    how = " or ".join(ways) or "change it"
    return StartupError(
        f"port {port} on {host} is already in use (another spanline up, or another program): "
        f"stop it or {how} to pick another port",
        kind="port_in_use",
    )


def is_addr_in_use(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE


def check_port_free(host: str, port: int, setting: str, flag: str | None = None) -> None:
    """Raise :class:`StartupError` when `host:port` cannot be bound now (port 0 always can)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if is_addr_in_use(exc):
                raise port_in_use(host, port, setting, flag) from None
            raise StartupError(
                f"cannot listen on {host}:{port} ({exc.strerror}): check {setting} ({env_var(setting)})",
                kind="bind_failed",
            ) from None
