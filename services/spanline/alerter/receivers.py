"""Delivering one notification: Slack (webhook or bot), PagerDuty Events v2, the console.

Retry policy, the same for every integration: 5xx and network errors are retried with
exponential backoff and full jitter; a 429 waits for Slack's ``Retry-After`` (slack_sdk's
``AsyncRateLimitErrorRetryHandler``) or PagerDuty's back-off (>= 30 s by default); any
other 4xx is permanent. The budget of one delivery is bounded (Alertmanager:
max(group_interval, 10 s)); when it runs out the notification is *not* marked sent and the
next group_interval tick tries again. Log lines name the integration and the host, never
a webhook path, token or routing key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from spanline.alerter import metrics
from spanline.alerter.dispatch import Alert, Notification
from spanline.alerter.rules import PagerDutyConfig, SlackConfig
from spanline.alerter.slack_blocks import build_message

log = logging.getLogger(__name__)

Kind = Literal["ok", "retry", "permanent"]


@dataclass(frozen=True, slots=True)
class Attempt:
    kind: Kind
    status: int = 0
    retry_after_s: float | None = None
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Result:
    ok: bool
    permanent: bool = False
    status: int = 0
    attempts: int = 0
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    budget_s: float = 10.0
    initial_s: float = 0.5
    max_s: float = 30.0


async def deliver_with_retries(
    integration: str, attempt: Callable[[], Awaitable[Attempt]], policy: RetryPolicy
) -> Result:
    deadline = time.monotonic() + policy.budget_s
    delay = policy.initial_s
    n = 0
    while True:
        n += 1
        try:
            got = await attempt()
        except (httpx.TransportError, OSError, TimeoutError) as exc:
            got = Attempt("retry")
            log.warning(
                "notification attempt failed", extra={"integration": integration, "error": type(exc).__name__}
            )
        except Exception as exc:  # aiohttp client errors from slack_sdk
            if type(exc).__module__.startswith("aiohttp"):
                got = Attempt("retry")
                log.warning(
                    "notification attempt failed",
                    extra={"integration": integration, "error": type(exc).__name__},
                )
            else:
                raise
        if got.kind == "ok":
            return Result(True, status=got.status, attempts=n, data=got.data)
        if got.kind == "permanent":
            log.error(
                "notification rejected permanently", extra={"integration": integration, "status": got.status}
            )
            return Result(False, permanent=True, status=got.status, attempts=n)
        if got.retry_after_s is not None:
            wait = got.retry_after_s
        else:
            wait = random.uniform(0, delay)
            delay = min(delay * 2, policy.max_s)
        if time.monotonic() + wait > deadline:
            log.warning(
                "notification not delivered within its budget; retried at the next group interval",
                extra={"integration": integration, "status": got.status, "attempts": n},
            )
            return Result(False, status=got.status, attempts=n)
        metrics.DELIVERY_RETRIES.labels(
            integration.split("/")[-2] if "/" in integration else integration
        ).inc()
        await asyncio.sleep(wait)


def classify(status: int, retry_after: float | None = None) -> Attempt:
    if 200 <= status < 300:
        return Attempt("ok", status)
    if status == 429:
        return Attempt("retry", status, retry_after)
    if status >= 500:
        return Attempt("retry", status)
    return Attempt("permanent", status)


def _retry_after(headers: Any) -> float | None:
    try:
        raw = headers.get("Retry-After") or headers.get("retry-after")
    except AttributeError:
        return None
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


class ChannelPacer:
    """Keeps posts to one Slack channel at least `min_interval_s` apart *as Slack sees them*.

    The interval runs from the end of the previous post (its response), not from when it
    was sent: a first request that also opens the connection reaches Slack later than a
    second one on the warm connection, so spacing the sends by exactly 1 s arrived 0.997 s
    apart. One post per channel is in flight at a time.
    """

    def __init__(self, min_interval_s: float) -> None:
        self.min_interval_s = min_interval_s
        self._last: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def turn(self, channel: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            gap = self._last.get(channel, -1e9) + self.min_interval_s - time.monotonic()
            if gap > 0:
                await asyncio.sleep(gap)
            try:
                yield
            finally:
                self._last[channel] = time.monotonic()


class SlackSender:
    def __init__(
        self, integration: str, cfg: SlackConfig, environ: dict[str, str], pacer: ChannelPacer
    ) -> None:
        self.integration = integration
        self.cfg = cfg
        self.pacer = pacer
        handlers: list[AsyncRetryHandler] = [AsyncRateLimitErrorRetryHandler(max_retry_count=2)]
        self._webhook: AsyncWebhookClient | None = None
        self._web: AsyncWebClient | None = None
        if cfg.mode == "webhook":
            assert cfg.webhook_url is not None
            url = cfg.webhook_url.resolve(environ)
            self.channel_key = "webhook:" + hashlib.sha256(url.encode()).hexdigest()[:12]
            self.host = urlsplit(url).hostname or "?"
            self._webhook = AsyncWebhookClient(url, timeout=10, retry_handlers=handlers)
        else:
            assert cfg.token is not None and cfg.channel is not None
            kwargs: dict[str, Any] = {
                "token": cfg.token.resolve(environ),
                "timeout": 10,
                "retry_handlers": handlers,
            }
            if cfg.base_url:
                kwargs["base_url"] = cfg.base_url.rstrip("/") + "/"
            self._web = AsyncWebClient(**kwargs)
            self.channel_key = cfg.channel
            self.host = urlsplit(cfg.base_url or "https://slack.com").hostname or "?"

    async def send(self, note: Notification, budget: RetryPolicy) -> Result:
        text, blocks = build_message(note)
        if self._webhook is not None:
            webhook = self._webhook

            async def post_webhook() -> Attempt:
                async with self.pacer.turn(self.channel_key):
                    resp = await webhook.send(text=text, blocks=blocks)
                return classify(resp.status_code, _retry_after(resp.headers))

            return await deliver_with_retries(self.integration, post_webhook, budget)
        web = self._web
        assert web is not None
        prev = note.previous
        update_ts = prev.data.get("ts") if prev is not None and prev.firing else None
        channel = (prev.data.get("channel") if prev is not None else None) or self.cfg.channel
        assert channel is not None

        async def post_bot() -> Attempt:
            async with self.pacer.turn(self.channel_key):
                try:
                    if update_ts:
                        resp = await web.chat_update(channel=channel, ts=update_ts, text=text, blocks=blocks)
                        return Attempt("ok", 200, data={"channel": channel, "ts": update_ts})
                    resp = await web.chat_postMessage(channel=channel, text=text, blocks=blocks)
                    return Attempt("ok", 200, data={"channel": str(resp["channel"]), "ts": str(resp["ts"])})
                except SlackApiError as exc:
                    status = int(exc.response.status_code)
                    if status == 200:
                        return Attempt("permanent", 400)  # ok:false (channel_not_found, ...)
                    return classify(status, _retry_after(exc.response.headers))

        return await deliver_with_retries(self.integration, post_bot, budget)


class PagerDutySender:
    def __init__(
        self, integration: str, cfg: PagerDutyConfig, environ: dict[str, str], backoff_429_s: float
    ) -> None:
        self.integration = integration
        self.cfg = cfg
        self._key = cfg.routing_key.resolve(environ)
        self._backoff_429_s = backoff_429_s
        self._client = httpx.AsyncClient(timeout=10)
        self.host = urlsplit(cfg.url).hostname or "?"

    def dedup_key(self, alert: Alert) -> str:
        """From the rule and its group labels: the same key across restarts and instances."""
        return "spanline-" + alert.fingerprint

    def _event(self, alert: Alert, action: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "routing_key": self._key,
            "event_action": action,
            "dedup_key": self.dedup_key(alert),
        }
        if action == "trigger":
            summary = alert.annotations.get("summary") or alert.rule
            body["payload"] = {
                "summary": summary[:1024],
                "source": self.cfg.source,
                "severity": self.cfg.severity.get(alert.labels.get("severity", ""), "error"),
                "component": alert.labels.get("project", ""),
                "group": alert.rule,
                "custom_details": {
                    "labels": alert.labels,
                    "value": alert.value,
                    "threshold": alert.threshold,
                },
            }
        return body

    async def send(self, note: Notification, budget: RetryPolicy) -> Result:
        events = [self._event(a, "trigger") for a in note.firing]
        events += [self._event(a, "resolve") for a in note.resolved]
        pending = list(events)

        async def post() -> Attempt:
            while pending:
                resp = await self._client.post(self.cfg.url, json=pending[0])
                got = classify(resp.status_code)
                if got.kind != "ok":
                    if resp.status_code == 429:
                        return Attempt("retry", 429, self._backoff_429_s)
                    return got
                pending.pop(0)
            return Attempt("ok", 202)

        return await deliver_with_retries(self.integration, post, budget)

    async def close(self) -> None:
        await self._client.aclose()


class ConsoleSender:
    """No receiver configured: print the notification as one JSON line and log it."""

    def __init__(self, integration: str) -> None:
        self.integration = integration

    async def send(self, note: Notification, budget: RetryPolicy) -> Result:
        line = {
            "notification": note.status,
            "integration": note.integration.id,
            "group": note.group_labels,
            "firing": [
                {"rule": a.rule, "labels": a.labels, "summary": a.annotations.get("summary", "")}
                for a in note.firing
            ],
            "resolved": [{"rule": a.rule, "labels": a.labels} for a in note.resolved],
        }
        print(json.dumps(line, sort_keys=True), file=sys.stdout, flush=True)
        log.info(
            "notification",
            extra={"integration": note.integration.id, "status": note.status, "firing": len(note.firing)},
        )
        return Result(True, attempts=1)
