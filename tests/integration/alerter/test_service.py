"""The alerter on the real broker: fire, resolve, DLQ, state on spanline.alerts, silences."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest

from spanline.alerter.silences import new_silence
from spanline.alerter.topics_io import write_silence
from spanline.core.kafka import OutRecord, Producer
from spanline.core.kafka.dlq import H_ERROR_REASON
from spanline.v1.spanline_pb2 import AlertEvent
from tests.integration.alerter.conftest import HOOK_PATH, RULES, keep_scoring, make_topics, run_service
from tests.integration.alerter.fake_receivers import FakeReceivers
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration


async def test_fire_resolve_dlq_and_state_records(alerter_settings: Any, fake: FakeReceivers) -> None:
    settings = alerter_settings()
    await make_topics(settings)
    service, task = await run_service(settings)
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
    service, task = await run_service(settings)
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


META_RULES = RULES.replace(
    "    slack: [{mode: webhook, webhook_url: {env: ALERT_HOOK}}]",
    "    slack: [{mode: webhook, webhook_url: {env: ALERT_HOOK}}]\n"
    "    pagerduty: [{routing_key: {env: ALERT_PD_KEY}, url: {env: ALERT_PD_URL}}]",
)


async def test_404_receiver_gets_no_retry_and_a_meta_alert(
    alerter_settings: Any, fake: FakeReceivers, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.fail(HOOK_PATH, (404, {}), (404, {}), (404, {}))
    monkeypatch.setenv("ALERT_PD_KEY", "pdkey")
    text = META_RULES.replace("url: {env: ALERT_PD_URL}", f"url: {fake.base}/v2/enqueue")
    settings = alerter_settings(text, meta_alert_after_failures=2)
    await make_topics(settings)
    service, task = await run_service(settings)
    try:
        await keep_scoring(settings, 1.0, "shop", 2.0)
        events = await fake.wait_for("/v2/enqueue", 2)
        await asyncio.sleep(0.5)
    finally:
        await service.stop()
        await asyncio.wait_for(task, 60)
    slack = fake.hits(HOOK_PATH)
    # one request per flush (a 404 is never retried inside a delivery), one flush per group_interval
    assert len(slack) >= 2 and all(b.at - a.at >= 0.9 for a, b in itertools.pairwise(slack))
    summaries = [e.body.get("payload", {}).get("summary", "") for e in events]
    assert summaries.count("err: mean 1 over 2s (8 samples)") <= 1
    assert any("alert receiver slack/slack/0 failed 2 times" in s for s in summaries)
    assert sum(1 for e in fake.hits("/v2/enqueue") if "error rate" not in str(e.body)) >= 2
