"""SIGKILL and restart of `spanline run alerter`, and two instances sharing the work.

No duplicate firing message after a restart, the resolve that happened while the
alerter was down is delivered, and an empty window after a restart resolves nothing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from spanline.core.broker import free_port
from spanline.settings import Settings
from tests.conftest import settings_env
from tests.integration.alerter.conftest import HOOK_PATH, RULES, keep_scoring, make_topics, wait_ready
from tests.integration.alerter.fake_receivers import STALL, FakeReceivers

pytestmark = pytest.mark.integration

# Windows longer than a restart (~3 s here), so the scores that arrived while the alerter
# was down are still inside the window when it evaluates again.
WIDE = RULES.replace("window: 2s", "window: 5s")


class Alerter:
    def __init__(self, settings: Settings, log: Path, hook: str) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            **settings_env(settings),
            "SPANLINE_ALERTER_RULES_FILE": str(settings.alerter.rules_file),
            "SPANLINE_ALERTER_TICK_S": "0.1",
            "SPANLINE_ALERTER_CHECKPOINT_INTERVAL_S": "0.3",
            "SPANLINE_LOG_LEVEL": "info",
            "ALERT_HOOK": hook,
        }
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> Alerter:
        out = open(self.log, "ab")
        cmd = [sys.executable, "-m", "spanline.cli.main", "run", "alerter", "--http-port", str(self.port)]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        await wait_ready(self.port)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def _texts(fake: FakeReceivers) -> list[str]:
    return [r.body["text"].split(" - ")[0] for r in fake.hits(HOOK_PATH)]


async def test_sigkill_mid_incident_then_resolve_while_down(
    alerter_settings: Any, fake: FakeReceivers, tmp_path: Path
) -> None:
    settings = alerter_settings(WIDE)
    await make_topics(settings)
    alerter = await Alerter(settings, tmp_path / "a.log", fake.base + HOOK_PATH).start()
    try:
        await keep_scoring(settings, 1.0, "shop", 2.5)
        await fake.wait_for(HOOK_PATH, 1)
        await asyncio.sleep(1.0)  # the delivery's result is recorded
        alerter.kill()  # mid-incident
        scoring = asyncio.create_task(keep_scoring(settings, 1.0, "shop", 6.0))
        await alerter.start()
        await scoring
        assert _texts(fake) == ["[FIRING:1] alertname=err project=shop"]  # no duplicate firing message
        alerter.kill()
        await keep_scoring(settings, 0.0, "shop", 4.0)  # resolves while the alerter is down
        # the healthy scores go on after the restart: a start slowed by a loaded machine must
        # not let the 5 s window empty before the first evaluation (no data keeps the state)
        healthy = asyncio.create_task(keep_scoring(settings, 0.0, "shop", 8.0))
        await alerter.start()
        await fake.wait_for(HOOK_PATH, 2, timeout=30)
        await healthy
        await asyncio.sleep(2.0)
        assert _texts(fake) == [
            "[FIRING:1] alertname=err project=shop",
            "[RESOLVED] alertname=err project=shop",
        ]
        assert alerter.terminate() == 0
        # a clean restart with no new scores: the empty window resolves and sends nothing
        await alerter.start()
        await asyncio.sleep(3.0)
        assert len(_texts(fake)) == 2
        assert alerter.terminate() == 0
    finally:
        if alerter.proc is not None and alerter.proc.poll() is None:
            alerter.kill()


async def test_sigkill_mid_delivery_resends_at_most_once(
    alerter_settings: Any, fake: FakeReceivers, tmp_path: Path
) -> None:
    settings = alerter_settings(WIDE)
    await make_topics(settings)
    fake.fail(HOOK_PATH, (STALL, {}))
    alerter = await Alerter(settings, tmp_path / "a.log", fake.base + HOOK_PATH).start()
    try:
        await keep_scoring(settings, 1.0, "shop", 2.5)
        await fake.wait_for(HOOK_PATH, 1)
        alerter.kill()  # intent recorded, request sent, no answer, no result
        await asyncio.sleep(6.0)  # and the window empties while down: no scores at all
        await alerter.start()
        await fake.wait_for(HOOK_PATH, 2)
        await asyncio.sleep(3.0)
        # re-sent once (the interrupted delivery), no third copy, no resolve from the empty window
        assert _texts(fake) == ["[FIRING:1] alertname=err project=shop"] * 2
    finally:
        if alerter.proc is not None and alerter.proc.poll() is None:
            alerter.kill()


async def test_two_instances_partitions_move_each_notification_once(
    alerter_settings: Any, fake: FakeReceivers, tmp_path: Path
) -> None:
    settings = alerter_settings(WIDE)
    await make_topics(settings)
    hook = fake.base + HOOK_PATH
    a = await Alerter(settings, tmp_path / "a.log", hook).start()
    b: Alerter | None = None
    try:
        projects = [f"p{i}" for i in range(6)]
        await asyncio.gather(*(keep_scoring(settings, 1.0, p, 2.5) for p in projects))
        await fake.wait_for(HOOK_PATH, 6)
        b = await Alerter(settings, tmp_path / "b.log", hook).start()  # partitions move to b
        await asyncio.gather(*(keep_scoring(settings, 1.0, p, 4.0) for p in projects))
        assert a.terminate() == 0  # and back to b only
        await asyncio.gather(*(keep_scoring(settings, 0.0, p, 3.0) for p in projects))
        await fake.wait_for(HOOK_PATH, 12, timeout=30)
        await asyncio.sleep(2.0)
        texts = sorted(_texts(fake))
        expected = sorted(
            [f"[FIRING:1] alertname=err project={p}" for p in projects]
            + [f"[RESOLVED] alertname=err project={p}" for p in projects]
        )
        assert texts == expected
    finally:
        for proc in (a, b):
            if proc is not None and proc.proc is not None and proc.proc.poll() is None:
                proc.kill()
