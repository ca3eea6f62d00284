"""The alerter on the real broker: fire, resolve, DLQ, state on spanline.alerts, silences."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from spanline.alerter.rules import load_rules
from spanline.alerter.service import AlerterService
from spanline.alerter.silences import new_silence
from spanline.alerter.topics_io import write_silence
from spanline.core.kafka import OutRecord, Producer
from spanline.core.kafka.dlq import H_ERROR_REASON
from spanline.v1.spanline_pb2 import AlertEvent
from tests.integration.alerter.conftest import HOOK_PATH, keep_scoring, make_topics
from tests.integration.alerter.fake_receivers import FakeReceivers
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration


async def _run(settings: Any) -> tuple[AlerterService, asyncio.Task[None]]:
    service = AlerterService(settings, load_rules(settings.alerter.rules_file))
    await service.start()
    task = asyncio.create_task(service.run())
    for _ in range(200):
        if service.ready() and service.owned:
            break
        await asyncio.sleep(0.1)
    return service, task


async def test_fire_resolve_dlq_and_state_records(alerter_settings: Any, fake: FakeReceivers) -> None:
    settings = alerter_settings()
    await make_topics(settings)
    service, task = await _run(settings)
    try:
        p = Producer(settings.kafka)
        await p.send_all([OutRecord(settings.topics.scores, b"this is not a score", b"k")])
        await p.stop()
        await keep_scoring(settings, 1.0, "shop", 3.0)
        fired = await fake.wait_for(HOOK_PATH, 1)
        assert "FIRING:1" in fired[0].body["text"]
        await keep_scoring(settings, 1.0, "shop", 1.5)
        assert len(fake.hits(HOOK_PATH)) == 1  # still firing: no second message
        await keep_scoring(settings, 0.0, "shop", 3.0)
        got = await fake.wait_for(HOOK_PATH, 2)
        assert "RESOLVED" in got[1].body["text"]
    finally:
        await service.stop()
        await asyncio.wait_for(task, 60)
    dlq = await read_topic(settings.kafka.bootstrap, settings.topics.scores + ".dlq", min_messages=1)
    assert dlq[0].value == b"this is not a score"
    assert dlq[0].header(H_ERROR_REASON) == b"decode_error"
    alerts = await read_topic(settings.kafka.bootstrap, settings.topics.alerts, min_messages=4)
    states = [AlertEvent.FromString(m.value) for m in alerts if not m.key.startswith(b"nflog|")]  # type: ignore[union-attr]
    assert [e.state for e in states] == [AlertEvent.FIRING, AlertEvent.RESOLVED]
    nflog = [AlertEvent.FromString(m.value) for m in alerts if m.key.startswith(b"nflog|")]  # type: ignore[union-attr]
    kinds = [e.labels["spanline.record"] for e in nflog]
    assert kinds == ["notify_intent", "notify_result", "notify_intent", "notify_result"]
    assert all("SECRET" not in e.summary for e in nflog)
    assert json.loads(nflog[1].summary)["firing"] == [states[0].fingerprint]


async def test_silence_applied_at_send_time(alerter_settings: Any, fake: FakeReceivers) -> None:
    settings = alerter_settings()
    await make_topics(settings)
    import time

    await write_silence(settings, new_silence(["project=quiet"], time.time(), 3600, "test", "pytest"))
    service, task = await _run(settings)
    try:
        await asyncio.gather(
            keep_scoring(settings, 1.0, "quiet", 3.0), keep_scoring(settings, 1.0, "loud", 3.0)
        )
        await fake.wait_for(HOOK_PATH, 1)
        await asyncio.sleep(1.5)
    finally:
        await service.stop()
        await asyncio.wait_for(task, 60)
    texts = [r.body["text"] for r in fake.hits(HOOK_PATH)]
    assert len(texts) == 1 and "project=loud" in texts[0]
