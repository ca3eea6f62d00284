"""Settings of the alerter (section ``alerter``, env ``SPANLINE_ALERTER_*``).

The rules, routes and receivers live in their own YAML file (``rules_file``); this
section holds only how the service runs. Without a rules file the shipped defaults run
and notifications are printed and logged.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from spanline.core.settings import Section


class AlerterSettings(Section):
    rules_file: Path | None = Field(
        default=None,
        description="rules/routes/receivers YAML; unset = the shipped default rules, console only",
    )
    eval_interval_s: float | None = Field(
        default=None, gt=0, le=3600, description="overrides the rule file's defaults.eval_interval"
    )
    tick_s: float = Field(default=1.0, gt=0, le=60, description="how often group timers are checked")
    group_wait_s: float | None = Field(
        default=None, ge=0, description="overrides every route's group_wait (benchmarks, tests)"
    )
    fold_batch_max_records: int = Field(default=10_000, ge=1, description="scores folded per partial batch")
    fold_batch_max_wait_s: float = Field(
        default=0.5, gt=0, le=60, description="longest a score waits before its partial is published"
    )
    delivery_timeout_s: float = Field(
        default=0.0,
        ge=0,
        description="retry budget of one notification; 0 = max(group_interval, 10 s) as Alertmanager",
    )
    retry_initial_s: float = Field(default=0.5, gt=0, description="first backoff after a 5xx/network error")
    retry_max_s: float = Field(default=30.0, gt=0, description="backoff ceiling")
    pagerduty_429_backoff_s: float = Field(
        default=30.0, ge=0, description="wait after a PagerDuty 429 (PagerDuty asks for >= 30 s)"
    )
    slack_min_post_interval_s: float = Field(
        default=1.0, ge=0, description="spacing of posts to one Slack channel (Slack: ~1 per second)"
    )
    meta_alert_after_failures: int = Field(
        default=3, ge=1, description="consecutive failed deliveries of one integration before a meta-alert"
    )
    silence_refresh_s: float = Field(default=5.0, gt=0, description="how often silences are re-read")
    checkpoint_interval_s: float = Field(
        default=10.0, gt=0, description="at most this long between checkpoints of a changed group"
    )
