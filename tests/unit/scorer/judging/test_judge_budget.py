"""Budget: reservations, reconciliation with usage, tail share, pacing, UTC day rollover."""

from __future__ import annotations

import asyncio

import pytest

from spanline.scorer.judging.budget import Budget, Price, estimate_tokens
from spanline.scorer.judging.config import JudgeSettings
from spanline.scorer.judging.ratelimit import RateLimiter

DAY = 86_400.0


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_estimate_is_chars_over_three_and_a_half() -> None:
    assert estimate_tokens(3500, 3.5) == 1000 and estimate_tokens(1, 3.5) == 1


def test_reserve_settle_and_tail_share() -> None:
    clock = Clock(100 * DAY)
    b = Budget(JudgeSettings(daily_budget_usd=1.0, tail_budget_share=0.3), Price(1000.0, 1000.0), clock)
    # bulk may spend up to 70% of the cap
    r = b.reserve("p", tail=False, input_tokens=500, output_tokens=100)  # $0.6 reserved
    assert r is not None and b.spent("p")[0] == pytest.approx(0.6)
    assert b.reserve("p", tail=False, input_tokens=100, output_tokens=100) is None  # 0.8 > 0.7
    assert b.reserve("p", tail=True, input_tokens=100, output_tokens=100) is not None  # tail: up to 1.0
    cost = b.settle(r, 300, 50)  # usage below the estimate: the difference comes back
    assert cost == pytest.approx(0.35)
    assert b.spent("p")[0] == pytest.approx(0.35 + 0.2)
    assert b.settle(r, 300, 50) == 0.0  # settling twice changes nothing
    usd_left, tokens_left = b.remaining("p")
    assert usd_left == pytest.approx(0.45) and tokens_left is None
    assert b.remaining("other") == (1.0, None)  # per project


def test_unknown_price_means_no_usd_cap_but_token_caps_work() -> None:
    b = Budget(JudgeSettings(daily_budget_usd=1.0, daily_budget_tokens=1000), Price(0, 0), Clock(5.0))
    assert b.reserve("p", tail=True, input_tokens=900, output_tokens=100) is not None
    assert b.reserve("p", tail=True, input_tokens=1, output_tokens=0) is None
    assert b.remaining("p") == (None, 0)


def test_pacing_factor_follows_spend_against_the_day() -> None:
    clock = Clock(100 * DAY + DAY / 2)  # noon UTC: half the day left
    b = Budget(JudgeSettings(daily_budget_tokens=1000, tail_budget_share=0.0), Price(0, 0), clock)
    assert b.bulk_factor("p") == 1.0
    r = b.reserve("p", tail=False, input_tokens=400, output_tokens=0)  # 40% spent, 60% left >= 50%
    assert r is not None and b.bulk_factor("p") == 1.0
    b.settle(r, 800, 0)  # 80% spent: 20% left for half a day -> 0.4 -> 0.25 (power of 1/2)
    assert b.bulk_factor("p") == 0.25
    b.settle(b.reserve("p", tail=False, input_tokens=200, output_tokens=0), 200, 0)  # type: ignore[arg-type]
    assert b.bulk_factor("p") == 0.0
    clock.t += DAY  # a new UTC day starts a fresh ledger
    assert b.bulk_factor("p") == 1.0 and b.spent("p") == (0.0, 0)


def test_no_cap_never_paces() -> None:
    b = Budget(JudgeSettings(daily_budget_usd=0.0), Price(1.0, 1.0), Clock(0.0))
    assert b.bulk_factor("p") == 1.0
    assert b.reserve("p", tail=False, input_tokens=10**9, output_tokens=0) is not None


async def test_rate_limiter_spaces_requests() -> None:
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(rpm=60, tpm=6_000, clock=lambda: now[0])
    orig = asyncio.sleep
    asyncio.sleep = fake_sleep  # type: ignore[assignment]
    try:
        waits = [await limiter.acquire(10) for _ in range(3)]
        big = await limiter.acquire(500)  # waits for the tokens, not the request slot
    finally:
        asyncio.sleep = orig  # type: ignore[assignment]
    assert waits[0] == 0.0 and waits[1] == pytest.approx(1.0) and waits[2] == pytest.approx(1.0)
    assert big == pytest.approx(2.3)  # 270 tokens accrued over 2 s of waits, 230 more at 100/s


def test_projects_with_their_own_cap_have_budget_series_from_the_start() -> None:
    from prometheus_client import REGISTRY

    settings = JudgeSettings(
        daily_budget_usd=1.0, daily_budget_tokens=5000, project_daily_budget_usd={"shop": 4.0}
    )
    Budget(settings, Price(1000.0, 1000.0), Clock(100 * DAY))
    assert REGISTRY.get_sample_value("spanline_judge_budget_remaining_usd", {"project": "shop"}) == 4.0
    assert REGISTRY.get_sample_value("spanline_judge_budget_remaining_tokens", {"project": "shop"}) == 5000
    assert REGISTRY.get_sample_value("spanline_judge_bulk_factor", {"project": "shop"}) == 1.0
