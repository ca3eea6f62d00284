"""One incident's whole timeline through the real service, broker, Slack webhook and PagerDuty.

fire -> still firing (nothing new) -> a second alert joins the group -> everything
resolves -> fires again (PagerDuty gets a new trigger on the same dedup_key, which opens
a new incident). The other timelines on the broker: flap inside group_wait and inhibition
in test_policy_broker.py; repeat after repeat_interval, min_samples not met and
change-vs-baseline with a small baseline in test_guards_broker.py. Their engine-level
versions are in tests/unit/alerter/test_timelines.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.integration.alerter.conftest import HOOK_PATH, RULES, keep_scoring, make_topics, run_service
from tests.integration.alerter.fake_receivers import FakeReceivers

pytestmark = pytest.mark.integration

PD = "/v2/enqueue"


def _rules(fake: FakeReceivers) -> str:
    return RULES.replace("group_by: [alertname, project]", "group_by: [alertname]").replace(
        "    slack: [{mode: webhook, webhook_url: {env: ALERT_HOOK}}]",
        "    slack: [{mode: webhook, webhook_url: {env: ALERT_HOOK}}]\n"
        f"    pagerduty: [{{routing_key: pdkey, url: {fake.base}{PD}}}]",
    )


def _slack(fake: FakeReceivers) -> list[str]:
    return [r.body["text"].split(" - ")[0] for r in fake.hits(HOOK_PATH)]


def _pd(fake: FakeReceivers) -> list[tuple[str, str]]:
    return [(r.body["event_action"], r.body["dedup_key"]) for r in fake.hits(PD)]


async def test_fire_refire_join_resolve_refire(alerter_settings: Any, fake: FakeReceivers) -> None:
    settings = alerter_settings(_rules(fake))
    await make_topics(settings)
    service, task = await run_service(settings)
    try:
        # fire
        await keep_scoring(settings, 1.0, "shop", 2.5)
        await fake.wait_for(HOOK_PATH, 1)
        assert _slack(fake) == ["[FIRING:1] alertname=err"]
        await fake.wait_for(PD, 1)
        (action, shop_key), *_ = _pd(fake)
        assert action == "trigger"
        # still firing: no new notification on any integration
        await keep_scoring(settings, 1.0, "shop", 2.0)
        assert len(_slack(fake)) == 1 and len(_pd(fake)) == 1
        # a second alert joins the group: one more message listing both
        await asyncio.gather(
            keep_scoring(settings, 1.0, "shop", 3.0), keep_scoring(settings, 1.0, "tools", 3.0)
        )
        await fake.wait_for(HOOK_PATH, 2)
        assert _slack(fake)[1] == "[FIRING:2] alertname=err"
        triggered = {k for a, k in _pd(fake) if a == "trigger"}
        assert len(triggered) == 2 and shop_key in triggered
        # both resolve: one resolved message, a PagerDuty resolve per alert
        await asyncio.gather(
            keep_scoring(settings, 0.0, "shop", 3.0), keep_scoring(settings, 0.0, "tools", 3.0)
        )
        await fake.wait_for(HOOK_PATH, 3)
        assert _slack(fake)[2] == "[RESOLVED] alertname=err"
        await asyncio.sleep(0.5)
        assert {k for a, k in _pd(fake) if a == "resolve"} == triggered
        n_pd = len(_pd(fake))
        # fires again after the resolve: a first notification again, same PagerDuty key
        await keep_scoring(settings, 1.0, "shop", 2.5)
        await fake.wait_for(HOOK_PATH, 4)
        assert _slack(fake)[3] == "[FIRING:1] alertname=err"
        await asyncio.sleep(0.5)
        assert _pd(fake)[n_pd:] == [("trigger", shop_key)]
        assert len(_slack(fake)) == 4
    finally:
        await service.stop()
        await asyncio.wait_for(task, 60)
