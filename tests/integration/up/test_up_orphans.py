"""A killed `spanline up` leaves nothing running.

Services run in their own process groups and the broker in its own session (so Ctrl-C
drains them in order); without the parent-death signal a SIGKILLed supervisor (OOM killer,
a CI timeout) left the whole pipeline running, holding its ports.
"""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from tests.integration.up.upctl import Up, up_env

pytestmark = pytest.mark.integration


def test_sigkilled_supervisor_takes_broker_and_services_with_it(tmp_path: Path) -> None:
    up = Up(up_env(tmp_path))
    try:
        up.wait_banner()
        children = psutil.Process(up.proc.pid).children()
        names = sorted(" ".join(c.cmdline()[3:5]) or c.name() for c in children)
        # the broker and every service are direct children of the supervisor
        assert len(children) >= 4 and any("tansu" in c.name() for c in children), names
        up.proc.kill()  # SIGKILL: the supervisor runs no handler at all
        up.proc.wait(30)
        _, alive = psutil.wait_procs(children, timeout=60)
        assert not alive, f"still running after the supervisor died: {[c.cmdline()[:5] for c in alive]}"
    finally:
        up.kill()
        for c in psutil.Process().children(recursive=True):
            if "spanline.cli.main" in " ".join(c.cmdline()):
                c.kill()
