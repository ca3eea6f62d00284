"""Shared pieces of the alerter's broker tests: rule file, score producer, fake receivers."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from spanline.alerter.rules import load_rules
from spanline.alerter.service import AlerterService
from spanline.core.kafka import OutRecord, Producer
from spanline.core.kafka.admin import create_topics
from spanline.settings import Settings
from spanline.v1.spanline_pb2 import Score
from tests.integration.alerter.fake_receivers import FakeReceivers

# one Slack receiver behind the usual route: every rule file of these tests ends with it
SLACK_ROUTE = """route:
  receiver: slack
  group_by: [alertname, project]
  group_wait: 0.5s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: slack
    slack: [{mode: webhook, webhook_url: {env: ALERT_HOOK}}]
"""

RULES = (
    """
version: 1
defaults: {eval_interval: 0.5s, for: 0s, keep_firing_for: 0s, min_samples: 3, allowed_lateness: 5s}
rules:
  - name: err
    score: error
    aggregate: mean
    window: 2s
    bucket: 0.5s
    threshold: {op: ">", value: 0.5}
"""
    + SLACK_ROUTE
)

HOOK_PATH = "/slack/webhook/T0/B0/SECRET"


@pytest.fixture
async def fake() -> AsyncIterator[FakeReceivers]:
    server = await FakeReceivers().start()
    os.environ["ALERT_HOOK"] = server.base + HOOK_PATH
    yield server
    await server.stop()


@pytest.fixture
def alerter_settings(make_settings: Any, tmp_path: Path) -> Any:
    def factory(rules: str = RULES, **alerter: Any) -> Settings:
        path = tmp_path / "rules.yaml"
        path.write_text(rules)
        section = {
            "rules_file": str(path),
            "tick_s": 0.1,
            "silence_refresh_s": 0.5,
            "checkpoint_interval_s": 0.5,
        }
        section.update(alerter)
        return make_settings(alerter=section)  # type: ignore[no-any-return]

    return factory


async def make_topics(settings: Settings) -> None:
    await create_topics(settings.kafka, settings.topics, settings.retention)


async def produce_scores(
    settings: Settings, name: str, points: list[tuple[float, float]], project: str
) -> None:
    """Scores at the given (event time, value) points, one producer for the lot."""
    producer = Producer(settings.kafka)
    records = []
    for i, (at, value) in enumerate(points):
        s = Score(
            score_id=f"{project}-{name}-{at}-{i}",
            name=name,
            score_value=value,
            project_id=project,
            evaluator_kind="heuristic",
            trace_id=os.urandom(16),
            time_unix_nano=int(at * 1e9),
        )
        records.append(OutRecord(settings.topics.scores, s.SerializeToString(), s.trace_id))
    await producer.send_all(records)
    await producer.stop()


async def send_scores(settings: Settings, name: str, value: float, project: str, n: int) -> None:
    """`n` scores of one value, stamped now."""
    await produce_scores(settings, name, [(time.time(), value)] * n, project)


async def keep_scoring(settings: Settings, value: float, project: str, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await send_scores(settings, "error", value, project, 4)
        await asyncio.sleep(0.25)


async def run_service(settings: Settings) -> tuple[AlerterService, asyncio.Task[None]]:
    """The alerter in this process, once both stages are ready and it owns partitions."""
    service = AlerterService(settings, load_rules(settings.alerter.rules_file))
    await service.start()
    task = asyncio.create_task(service.run())
    for _ in range(200):
        if service.ready() and service.owned:
            break
        await asyncio.sleep(0.1)
    return service, task


async def wait_ready(port: int, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz", timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("alerter not ready")
