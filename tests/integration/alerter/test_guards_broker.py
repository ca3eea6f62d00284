"""Repeat, min_samples and change-vs-baseline on the real service, broker and receivers.

The engine-level versions are in tests/unit/alerter/test_timelines.py; these run the same
timelines through `spanline.scores`, both alerter stages and the real Slack webhook and
PagerDuty clients against a local HTTP server, with intervals of a second or two.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from spanline.alerter.service import AlerterService
from spanline.settings import Settings
from spanline.v1.spanline_pb2 import AlertEvent
from tests.integration.alerter.conftest import (
    HOOK_PATH,
    RULES,
    SLACK_ROUTE,
    keep_scoring,
    make_topics,
    produce_scores,
    run_service,
    send_scores,
)
from tests.integration.alerter.fake_receivers import FakeReceivers
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration

PD = "/v2/enqueue"
WEEK = 7 * 86400.0


def _slack(fake: FakeReceivers) -> list[str]:
    return [r.body["text"].split(" - ")[0] for r in fake.hits(HOOK_PATH)]


def _series(service: AlerterService) -> dict[tuple[str, str], Any]:
    """Every alert series the evaluator holds, by (rule, project)."""
    return {
        (s.rule.name, s.labels.get("project", "")): s
        for g in service.evaluator.groups.values()
        for s in g.series.values()
    }


async def _stop(service: AlerterService, task: asyncio.Task[None]) -> None:
    await service.stop()
    await asyncio.wait_for(task, 60)


async def _firing_events(settings: Settings) -> list[AlertEvent]:
    """The FIRING state changes the alerter wrote to `spanline.alerts` (nflog records left out)."""
    msgs = await read_topic(settings.kafka.bootstrap, settings.topics.alerts, min_messages=0, timeout_s=3)
    events = [AlertEvent.FromString(m.value) for m in msgs if not (m.key or b"").startswith(b"nflog|")]
    return [e for e in events if e.state == AlertEvent.FIRING]


async def test_repeat_after_repeat_interval(alerter_settings: Any, fake: FakeReceivers) -> None:
    """An alert that keeps firing is notified again once repeat_interval has passed, on a
    group_interval tick, and not before: with group_interval 1 s and repeat_interval 2 s the
    repeats come every 3 s (the first tick where the last send is *more* than 2 s old)."""
    rules = RULES.replace("repeat_interval: 1h", "repeat_interval: 2s").replace(
        "    slack: [{mode: webhook, webhook_url: {env: ALERT_HOOK}}]",
        "    slack: [{mode: webhook, webhook_url: {env: ALERT_HOOK}}]\n"
        f"    pagerduty: [{{routing_key: pdkey, url: {fake.base}{PD}}}]",
    )
    settings = alerter_settings(rules)
    await make_topics(settings)
    service, task = await run_service(settings)
    try:
        scoring = asyncio.create_task(keep_scoring(settings, 1.0, "shop", 12.0))
        await fake.wait_for(HOOK_PATH, 3, timeout=20)
        await scoring
    finally:
        await _stop(service, task)
    hits = fake.hits(HOOK_PATH)
    assert set(_slack(fake)) == {"[FIRING:1] alertname=err project=shop"}
    gaps = [b.at - a.at for a, b in itertools.pairwise(hits)]
    # never before repeat_interval (2 s); at most one group_interval tick (1 s) late, plus slack
    assert all(2.0 <= g <= 4.5 for g in gaps), gaps
    # PagerDuty repeats the trigger on the same dedup_key (it de-duplicates into one incident)
    pd = [(r.body["event_action"], r.body["dedup_key"]) for r in fake.hits(PD)]
    assert len(pd) >= 2 and {a for a, _ in pd} == {"trigger"} and len({k for _, k in pd}) == 1


async def test_min_samples_not_met_never_fires(alerter_settings: Any, fake: FakeReceivers) -> None:
    """Every score is an error (mean 1.0 > 0.5), but no 2 s window ever holds min_samples (3)
    of them: the window is "insufficient data" and nothing fires. Then enough scores arrive
    and the same rule fires, so the quiet part is not a pipeline that never fires."""
    settings = alerter_settings()
    await make_topics(settings)
    service, task = await run_service(settings)
    try:
        # 2 scores every 3 s: a window reads buckets over at most 2.5 s, so never more than 2
        seen: set[tuple[str, str, float | None]] = set()  # (verdict, state, value) as evaluated
        for _ in range(3):
            await send_scores(settings, "error", 1.0, "shop", 2)
            for _ in range(30):
                await asyncio.sleep(0.1)
                series = _series(service).get(("err", "shop"))
                if series is not None:
                    seen.add((series.last.verdict, series.state, series.last.value))
        # the scores were evaluated, each window was short of samples, and never read as true
        assert ("insufficient", "inactive", 1.0) in seen
        assert {verdict for verdict, _, _ in seen} <= {"insufficient", "no_data"}, seen
        assert {state for _, state, _ in seen} == {"inactive"}, seen
        assert fake.hits(HOOK_PATH) == [] and service.notified == []
        assert await _firing_events(settings) == []
        # the positive control: 16 scores a second, the same values
        await keep_scoring(settings, 1.0, "shop", 2.5)
        await fake.wait_for(HOOK_PATH, 1)
    finally:
        await _stop(service, task)
    assert _slack(fake) == ["[FIRING:1] alertname=err project=shop"]


BASELINE_RULES = (
    """
version: 1
defaults: {eval_interval: 0.5s, for: 0s, keep_firing_for: 0s, min_samples: 3, allowed_lateness: 5s}
rules:
  # min_baseline is the guard: the change is measured against max(baseline, 1)
  - name: cost-vs-min-baseline
    score: cost_usd
    aggregate: mean
    window: 2s
    bucket: 0.5s
    change: {pct: 100, min_abs_delta: 0.1, min_baseline: 1, bucket: 1s}
  # min_abs_delta is the guard: the change must also be worth at least 1 USD
  - name: cost-vs-min-abs-delta
    score: cost_usd
    aggregate: mean
    window: 2s
    bucket: 0.5s
    change: {pct: 100, min_abs_delta: 1, min_baseline: 0.1, bucket: 1s}
"""
    + SLACK_ROUTE
)


async def _keep_costing(settings: Settings, value: float, project: str, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await send_scores(settings, "cost_usd", value, project, 4)
        await asyncio.sleep(0.25)


async def test_change_vs_small_baseline(alerter_settings: Any, fake: FakeReceivers) -> None:
    """A tiny baseline does not turn a small rise into a huge relative spike; a real spike
    over a sufficient baseline fires.

    The rules use the shipped baseline grammar unchanged: `offset` 7d with the default
    `fallback_offsets` [1d, 1h] (the shorter offsets used while less than 7 days of data
    exist). A change rule accepts event times back to offset + window + change.bucket (its
    buckets' retention, not `allowed_lateness`, bounds it), so the baseline scores are
    produced now with their real timestamps a week ago (and, for `young`, an hour ago):
    the true 7-day offset and the 1 h fallback both run on the broker. The aggregate is the
    mean cost per trace, so the figures do not depend on how fast this machine produces.

    - tiny: baseline 0.001 USD, now 0.5 USD: +49,900% against the raw baseline, but
      +49.9% against min_baseline 1, and a delta of 0.499 < min_abs_delta 1: no fire.
    - steady: baseline 1 USD a week ago, now 5 USD (+400%, delta 4): both rules fire.
    - young: only an hour of history, baseline 1 USD an hour ago (1 h fallback), now 5: fires.
    """
    settings = alerter_settings(BASELINE_RULES)
    await make_topics(settings)
    t0 = time.time()
    grid = [t0 + i * 0.1 for i in range(400)]  # covers every evaluation of the next 40 s
    await asyncio.gather(
        produce_scores(settings, "cost_usd", [(t - WEEK, 0.001) for t in grid], "tiny"),
        produce_scores(settings, "cost_usd", [(t - WEEK, 1.0) for t in grid], "steady"),
        produce_scores(settings, "cost_usd", [(t - 3600.0, 1.0) for t in grid], "young"),
    )
    service, task = await run_service(settings)
    seen: dict[tuple[str, str], set[tuple[str, str, float | None, float | None]]] = {}

    async def watch() -> None:
        """Every (verdict, state, baseline, value) each series is evaluated to while scoring
        (rounded: the means of equal values differ from them in the last bits)."""
        while True:
            for key, s in _series(service).items():
                last = s.last
                base = None if last.baseline is None else round(last.baseline, 6)
                value = None if last.value is None else round(last.value, 6)
                seen.setdefault(key, set()).add((last.verdict, s.state, base, value))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.gather(
            _keep_costing(settings, 0.5, "tiny", 5.0),
            _keep_costing(settings, 5.0, "steady", 5.0),
            _keep_costing(settings, 5.0, "young", 5.0),
        )
        await fake.wait_for(HOOK_PATH, 4)
        await asyncio.sleep(1.0)
    finally:
        watcher.cancel()
        await _stop(service, task)
    assert sorted(_slack(fake)) == [
        f"[FIRING:1] alertname={rule} project={project}"
        for rule in ("cost-vs-min-abs-delta", "cost-vs-min-baseline")
        for project in ("steady", "young")
    ]
    for rule in ("cost-vs-min-baseline", "cost-vs-min-abs-delta"):
        tiny = seen[(rule, "tiny")]
        # evaluated against the week-old baseline (not only "insufficient"), judged no change
        assert ("false", "inactive", 0.001, 0.5) in tiny, (rule, tiny)
        assert {state for _, state, _, _ in tiny} == {"inactive"}, (rule, tiny)
        for project in ("steady", "young"):
            fired = seen[(rule, project)]
            assert ("true", "firing", 1.0, 5.0) in fired, (rule, fired)
