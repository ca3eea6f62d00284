"""Calls to an OpenAI-compatible judge endpoint: output modes, retries, rate limits.

The ``openai`` client's own retries are switched off (``max_retries=0``) so every
attempt passes the client-side rate limiter and is counted. 429, 408, 5xx, timeouts and
connection errors are retried with exponential backoff, or after the server's
Retry-After when it gives one (a Retry-After longer than ``retry_after_max_s`` ends the
tries: waiting that long would hold the trace hostage). 401/403 and an unknown model are
never retried: the caller pauses the evaluator.

Output modes are feature-detected per endpoint: JSON-schema structured output first
(decoding constrained to the verdict schema), JSON mode if the endpoint refuses
``json_schema``, free text with extraction last. The mode that worked is remembered.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import openai

from spanline.scorer.judging import metrics
from spanline.scorer.judging.config import JudgeSettings
from spanline.scorer.judging.output import VERDICT_SCHEMA
from spanline.scorer.judging.ratelimit import RateLimiter

MODES = ("json_schema", "json_object", "text")
_FORMAT_HINTS = ("response_format", "json_schema", "json_object", "schema", "grammar", "structured")


@dataclass(frozen=True, slots=True)
class Completion:
    text: str | None
    finish_reason: str
    refusal: str | None
    input_tokens: int
    output_tokens: int
    usage_known: bool
    model: str
    response_id: str
    mode: str
    attempts: int
    seconds: float


class JudgeCallError(Exception):
    """A call that produced no completion. ``error_type`` is the score's ``error.type``."""

    def __init__(self, error_type: str, *, status: int | None = None, pause: bool = False) -> None:
        super().__init__(error_type if status is None else f"{error_type} (HTTP {status})")
        self.error_type = error_type
        self.status = status
        self.pause = pause


def retry_after_s(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _classify(exc: Exception) -> tuple[str, bool, bool]:
    """(error type, retryable, pause evaluator) of an ``openai`` exception."""
    if isinstance(exc, openai.APITimeoutError):
        return "timeout", True, False
    if isinstance(exc, openai.APIConnectionError):
        return "connection_error", True, False
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited", True, False
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return "auth", False, True
    if isinstance(exc, openai.NotFoundError):
        return "model_not_found", False, True
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 408 or status == 409:
            return "timeout" if status == 408 else "conflict", True, False
        if status >= 500:
            return "server_error", True, False
        text = str(exc).lower()
        if "context" in text and ("length" in text or "size" in text or "exceed" in text):
            return "context_length", False, False
        if "model" in text and ("not found" in text or "does not exist" in text or "unknown" in text):
            return "model_not_found", False, True
        return "bad_request", False, False
    return type(exc).__name__, False, False


class JudgeClient:
    def __init__(
        self,
        settings: JudgeSettings,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        key = settings.api_key.get_secret_value() if settings.api_key else "unused"
        self._client = openai.AsyncOpenAI(
            base_url=settings.base_url,
            api_key=key or "unused",
            max_retries=0,
            timeout=openai.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
        )
        self._limiter = RateLimiter(settings.rpm, settings.tpm)
        self._sleep = sleep
        self._rng = rng or random.Random()
        modes = MODES if settings.output_mode == "auto" else (settings.output_mode,)
        self._modes: tuple[str, ...] = modes
        self._mode_index = 0

    @property
    def mode(self) -> str:
        return self._modes[self._mode_index]

    def _response_format(self, mode: str) -> dict[str, Any] | None:
        if mode == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {"name": "verdict", "schema": VERDICT_SCHEMA, "strict": True},
            }
        if mode == "json_object":
            return {"type": "json_object"}
        return None

    def _backoff(self, attempt: int) -> float:
        s = self.settings
        base = min(s.backoff_initial_s * 2.0 ** (attempt - 1), s.backoff_max_s)
        return base * (1.0 - 0.25 * self._rng.random())

    async def complete(
        self, messages: list[dict[str, str]], *, model: str, evaluator: str, estimated_tokens: int
    ) -> Completion:
        """One completion, retried and mode-negotiated; raises :class:`JudgeCallError`."""
        s = self.settings
        attempt = 0
        while True:
            attempt += 1
            mode = self.mode
            kwargs: dict[str, Any] = {
                "model": model,
                "messages": messages,
                "max_tokens": s.max_tokens,
                "temperature": s.temperature,
            }
            if s.seed is not None:
                kwargs["seed"] = s.seed
            fmt = self._response_format(mode)
            if fmt is not None:
                kwargs["response_format"] = fmt
            await self._limiter.acquire(estimated_tokens)
            started = time.perf_counter()
            try:
                response = await self._client.chat.completions.create(**kwargs)
            except openai.APIError as exc:
                seconds = time.perf_counter() - started
                metrics.CALL_SECONDS.labels(evaluator=evaluator).observe(seconds)
                error_type, retryable, pause = _classify(exc)
                metrics.CALLS.labels(evaluator=evaluator, outcome=error_type).inc()
                status = getattr(exc, "status_code", None)
                if error_type == "bad_request" and self._unsupported_format(exc):
                    self._mode_index += 1
                    metrics.RETRIES.labels(cause="output_mode").inc()
                    attempt -= 1  # a format downgrade is not a failed try
                    continue
                if not retryable or attempt >= s.max_attempts:
                    raise JudgeCallError(error_type, status=status, pause=pause) from None
                delay = self._backoff(attempt)
                response_obj = getattr(exc, "response", None)
                hinted = retry_after_s(response_obj.headers) if response_obj is not None else None
                if hinted is not None:
                    if hinted > s.retry_after_max_s:
                        raise JudgeCallError(error_type, status=status) from None
                    delay = hinted
                metrics.RETRIES.labels(cause=error_type).inc()
                await self._sleep(delay)
                continue
            seconds = time.perf_counter() - started
            metrics.CALL_SECONDS.labels(evaluator=evaluator).observe(seconds)
            metrics.CALLS.labels(evaluator=evaluator, outcome="ok").inc()
            return self._completion(response, mode, attempt, seconds)

    def _unsupported_format(self, exc: openai.APIError) -> bool:
        if self._mode_index + 1 >= len(self._modes) or self.mode == "text":
            return False
        text = str(exc).lower()
        return any(h in text for h in _FORMAT_HINTS)

    @staticmethod
    def _completion(response: Any, mode: str, attempts: int, seconds: float) -> Completion:
        choice = response.choices[0] if response.choices else None
        message = choice.message if choice is not None else None
        usage = response.usage
        return Completion(
            text=message.content if message is not None else None,
            finish_reason=(choice.finish_reason or "") if choice is not None else "",
            refusal=getattr(message, "refusal", None) if message is not None else None,
            input_tokens=int(usage.prompt_tokens or 0) if usage is not None else 0,
            output_tokens=int(usage.completion_tokens or 0) if usage is not None else 0,
            usage_known=usage is not None,
            model=response.model or "",
            response_id=response.id or "",
            mode=mode,
            attempts=attempts,
            seconds=seconds,
        )

    def refund(self, tokens: int) -> None:
        self._limiter.refund(tokens)

    async def close(self) -> None:
        await self._client.close()
