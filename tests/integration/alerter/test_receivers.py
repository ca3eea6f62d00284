"""Receivers against a local Slack/PagerDuty server, through slack_sdk and httpx."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from slack_sdk.models.blocks import Block

from spanline.alerter.dispatch import Alert, Integration, NflogEntry, Notification
from spanline.alerter.receivers import ChannelPacer, PagerDutySender, RetryPolicy, SlackSender
from spanline.alerter.rules import PagerDutyConfig, SlackConfig
from spanline.alerter.slack_blocks import MAX_BLOCKS
from tests.integration.alerter.fake_receivers import FakeReceivers

pytestmark = pytest.mark.integration

POLICY = RetryPolicy(budget_s=15.0, initial_s=0.05, max_s=0.2)


@pytest.fixture
async def fake() -> AsyncIterator[FakeReceivers]:
    server = await FakeReceivers().start()
    yield server
    await server.stop()


def _alert(i: int = 0, summary: str = "error rate 0.4") -> Alert:
    return Alert(
        f"fp{i:04d}",
        "error-rate",
        {"alertname": "error-rate", "project": f"p{i}", "severity": "critical"},
        {"summary": summary},
        time.time(),
    )


def _note(
    kind: str, firing: list[Alert], resolved: list[Alert] | None = None, previous: NflogEntry | None = None
) -> Notification:
    return Notification(
        "root|{}",
        {"alertname": "error-rate"},
        Integration(f"r/{kind}/0", "r", kind),
        firing,
        resolved or [],
        previous,
        True,
    )


def _webhook(fake: FakeReceivers) -> SlackSender:
    cfg = SlackConfig(mode="webhook", webhook_url={"env": "HOOK"})  # type: ignore[arg-type]
    return SlackSender("r/slack/0", cfg, {"HOOK": fake.base + "/slack/webhook/T0/B0/SECRET"}, ChannelPacer(0))


async def test_503_503_200_delivered_once(fake: FakeReceivers) -> None:
    fake.fail("/slack/webhook/T0/B0/SECRET", (503, {}), (503, {}))
    result = await _webhook(fake).send(_note("slack", [_alert()]), POLICY)
    assert result.ok and result.attempts == 3
    assert len(fake.requests) == 3  # two refusals, one delivery


async def test_429_retry_after_is_honoured(fake: FakeReceivers) -> None:
    fake.fail("/slack/webhook/T0/B0/SECRET", (429, {"Retry-After": "2"}))
    started = time.monotonic()
    result = await _webhook(fake).send(_note("slack", [_alert()]), POLICY)
    assert result.ok
    reqs = fake.requests
    assert len(reqs) == 2 and reqs[1].at - reqs[0].at >= 2.0
    assert time.monotonic() - started >= 2.0


async def test_404_is_permanent_and_not_retried(
    fake: FakeReceivers, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail("/slack/webhook/T0/B0/SECRET", (404, {}))
    result = await _webhook(fake).send(_note("slack", [_alert()]), POLICY)
    assert not result.ok and result.permanent and result.status == 404
    assert len(fake.requests) == 1
    assert "SECRET" not in caplog.text


async def test_sixty_alerts_make_a_valid_slack_payload(fake: FakeReceivers) -> None:
    alerts = [_alert(i, "x" * 5000) for i in range(60)]
    result = await _webhook(fake).send(_note("slack", alerts), POLICY)
    assert result.ok
    body = fake.requests[0].body
    blocks = body["blocks"]
    assert len(blocks) <= MAX_BLOCKS
    for b in blocks:
        parsed = Block.parse(b)
        assert parsed is not None
        parsed.to_dict()  # slack_sdk's own models enforce Slack's per-block limits
    assert any("+40 more" in str(b) for b in blocks)
    assert len(body["text"]) <= 3000


async def test_bot_mode_updates_the_same_message_on_resolve(fake: FakeReceivers) -> None:
    cfg = SlackConfig(mode="bot", token={"value": "xoxb-test"}, channel="C123", base_url=fake.base + "/api/")  # type: ignore[arg-type]
    sender = SlackSender("r/slack/0", cfg, {}, ChannelPacer(1.0))
    a = _alert()
    fired = await sender.send(_note("slack", [a]), POLICY)
    assert fired.ok and fired.data["ts"]
    prev = NflogEntry(frozenset({a.fingerprint}), frozenset(), time.time(), fired.data)
    resolved = await sender.send(_note("slack", [], [a], prev), POLICY)
    assert resolved.ok
    post = fake.hits("/api/chat.postMessage")
    update = fake.hits("/api/chat.update")
    assert len(post) == 1 and len(update) == 1
    assert update[0].body["ts"] == fired.data["ts"] and update[0].body["channel"] == "C123"
    assert update[0].at - post[0].at >= 1.0  # >= 1 s between posts to one channel


async def test_pagerduty_trigger_resolve_dedup_and_429(fake: FakeReceivers) -> None:
    cfg = PagerDutyConfig(routing_key={"env": "PD_KEY"}, url=fake.base + "/v2/enqueue")  # type: ignore[arg-type]
    sender = PagerDutySender("r/pagerduty/0", cfg, {"PD_KEY": "routingkey123"}, backoff_429_s=0.5)
    a = _alert(summary="s" * 3000)
    fake.fail("/v2/enqueue", (429, {}), (502, {}))
    started = time.monotonic()
    assert (await sender.send(_note("pagerduty", [a]), POLICY)).ok
    assert time.monotonic() - started >= 0.5
    assert (await sender.send(_note("pagerduty", [], [a]), POLICY)).ok
    await sender.close()
    trig, resolve = fake.requests[-2].body, fake.requests[-1].body
    assert trig["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trig["dedup_key"] == resolve["dedup_key"] == PagerDutySender.dedup_key(sender, _alert())
    assert len(trig["payload"]["summary"]) == 1024 and trig["payload"]["severity"] == "critical"
    assert len(fake.requests) == 4
