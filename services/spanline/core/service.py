"""Running one service: its health port, its component, and a SIGTERM that drains.

A component is anything with start/run/stop/ready (see :class:`Component`), in the spirit
of a Collector component's lifecycle. The runner owns process concerns so that service
code only holds settings and the receive -> process -> emit logic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Protocol

from spanline.core.http import HealthServer
from spanline.core.startup import EXIT_PERMANENT, StartupError, is_addr_in_use, port_in_use

log = logging.getLogger(__name__)


class Component(Protocol):
    name: str

    async def start(self) -> None:
        """Bind ports, open clients. Raise to abort start-up with a clear message."""

    async def run(self) -> None:
        """Do the work until :meth:`stop` is called."""

    async def stop(self) -> None:
        """Stop taking input, flush, commit. Must be safe to call more than once."""

    def ready(self) -> bool: ...


def _write_ports(path: Path, http_port: int, component: Component) -> None:
    """Atomically, so a reader never sees half a file. A component may list what it serves
    through an optional ``endpoints() -> dict[str, str]`` (name -> host:port or URL)."""
    endpoints = getattr(component, "endpoints", None)
    data = {"pid": os.getpid(), "http_port": http_port, "endpoints": endpoints() if endpoints else {}}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)


async def run_component(
    component: Component,
    http_host: str,
    http_port: int,
    grace_s: float = 15.0,
    ports_file: Path | None = None,
) -> int:
    """Run until SIGTERM/SIGINT, then drain within `grace_s`. Returns the exit code.

    `ports_file` receives the bound ports as JSON once everything accepts: a supervisor
    prints real addresses (port 0 included) only when they can be used.
    """
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop_requested.set)

    health = HealthServer(http_host, http_port, component.ready)
    try:
        try:
            await health.start()
        except OSError as bind_error:
            if is_addr_in_use(bind_error):
                raise port_in_use(http_host, http_port, "http.port", "--http-port") from None
            raise
        try:
            await component.start()
        except Exception:
            await health.stop()
            raise
    except StartupError as failure:
        return startup_failed(component.name, failure)
    log.info("service started", extra={"component": component.name, "http_port": health.port})
    if ports_file is not None:
        _write_ports(ports_file, health.port, component)
    work = asyncio.create_task(component.run(), name=f"{component.name}-run")
    stopper = asyncio.create_task(stop_requested.wait())
    done, _ = await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if work in done:
        stopper.cancel()
        exc = work.exception()
        if exc is not None:
            log.error("service failed", exc_info=exc, extra={"component": component.name})
            code = 1
    else:
        log.info("stop requested; draining", extra={"component": component.name, "grace_s": grace_s})
        try:
            await asyncio.wait_for(component.stop(), grace_s)
            await asyncio.wait_for(work, grace_s)
        except TimeoutError:
            log.error("drain exceeded the grace period", extra={"component": component.name})
            work.cancel()
            code = 1
    await health.stop()
    log.info("service stopped", extra={"component": component.name, "exit_code": code})
    return code


def startup_failed(service: str, exc: StartupError) -> int:
    """One human line on stderr, one JSON log line, and the code a supervisor must not restart."""
    print(f"spanline {service}: {exc}", file=sys.stderr, flush=True)
    log.error(
        "permanent start-up error; not restarting",
        extra={"component": service, "kind": exc.kind, "reason": str(exc), "exit_code": EXIT_PERMANENT},
    )
    return EXIT_PERMANENT
