"""Alertmanager policy on the real service and broker: a flap inside group_wait, inhibition."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from spanline.v1.spanline_pb2 import AlertEvent
from tests.integration.alerter.conftest import HOOK_PATH, RULES, keep_scoring, make_topics, run_service
from tests.integration.alerter.fake_receivers import FakeReceivers
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration

WARN_RULE = """  - name: err-warn
    score: error
    aggregate: mean
    window: 2s
    bucket: 0.5s
    threshold: {op: ">", value: 0.2}
    labels: {severity: warning}
route:"""

INHIBIT = (
    RULES.replace(
        '    threshold: {op: ">", value: 0.5}\nroute:',
        '    threshold: {op: ">", value: 0.5}\n    labels: {severity: critical}\n' + WARN_RULE,
    )
    + "inhibit_rules:\n"
    "  - source_matchers: {severity: critical}\n"
    "    target_matchers: {severity: warning}\n"
    "    equal: [project]\n"
)


async def test_flap_inside_group_wait_sends_nothing(alerter_settings: Any, fake: FakeReceivers) -> None:
    settings = alerter_settings(RULES.replace("group_wait: 0.5s", "group_wait: 4s"))
    await make_topics(settings)
    service, task = await run_service(settings)
    try:
        await keep_scoring(settings, 1.0, "shop", 1.0)  # fires
        await keep_scoring(settings, 0.0, "shop", 3.0)  # and resolves before group_wait ends
        await asyncio.sleep(4.0)
        notified = list(service.notified)
    finally:
        await service.stop()
        await asyncio.wait_for(task, 60)
    alerts = await read_topic(settings.kafka.bootstrap, settings.topics.alerts, min_messages=2)
    states = [
        AlertEvent.FromString(m.value).state for m in alerts if not (m.key or b"").startswith(b"nflog|")
    ]
    assert states == [AlertEvent.FIRING, AlertEvent.RESOLVED]  # it did flap
    assert notified == [] and fake.hits(HOOK_PATH) == []  # and nobody heard of it


async def test_inhibition_mutes_the_warning_while_the_critical_fires(
    alerter_settings: Any, fake: FakeReceivers
) -> None:
    settings = alerter_settings(INHIBIT)
    await make_topics(settings)
    service, task = await run_service(settings)
    try:
        await asyncio.gather(
            keep_scoring(settings, 1.0, "shop", 3.0),  # both rules fire for shop
            keep_scoring(settings, 0.3, "tools", 3.0),  # only the warning fires for tools
        )
        await fake.wait_for(HOOK_PATH, 2)
        await asyncio.sleep(1.5)
        firing = sorted(s.state for g in service.evaluator.groups.values() for s in g.series.values())
    finally:
        await service.stop()
        await asyncio.wait_for(task, 60)
    texts = sorted(r.body["text"].split(" - ")[0] for r in fake.hits(HOOK_PATH))
    assert firing.count("firing") == 3  # err/shop, err-warn/shop, err-warn/tools
    assert texts == [
        "[FIRING:1] alertname=err project=shop",
        "[FIRING:1] alertname=err-warn project=tools",
    ]
