"""Client-side request and token rates, so the judge stays under the endpoint's limits.

Hitting a provider's 429s is slower and costlier than pacing: every refused call still
costs a round trip and its retry delay. Two token buckets (requests/min, tokens/min)
refill continuously; a caller waits until both hold enough.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, rpm: int, tpm: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._req_rate = rpm / 60.0
        self._tok_rate = tpm / 60.0
        self._req_cap = float(rpm)
        self._tok_cap = float(tpm)
        # start with one second's worth, not a full minute, so a cold start cannot burst
        self._req = min(self._req_cap, max(1.0, self._req_rate))
        self._tok = min(self._tok_cap, max(1.0, self._tok_rate))
        self._last = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._req = min(self._req_cap, self._req + elapsed * self._req_rate)
        self._tok = min(self._tok_cap, self._tok + elapsed * self._tok_rate)

    async def acquire(self, tokens: int) -> float:
        """Wait for one request and ``tokens`` tokens; returns the seconds waited."""
        need = min(float(tokens), self._tok_cap)  # a call bigger than a minute's tokens waits a minute
        waited = 0.0
        async with self._lock:  # FIFO: nobody overtakes a caller waiting for a big call
            while True:
                self._refill()
                wait = max((1.0 - self._req) / self._req_rate, (need - self._tok) / self._tok_rate, 0.0)
                if wait <= 0.0:
                    self._req -= 1.0
                    self._tok -= need
                    return waited
                await asyncio.sleep(wait)
                waited += wait

    def refund(self, tokens: int) -> None:
        """Return tokens a call reserved but did not use (``usage`` below the estimate)."""
        self._tok = min(self._tok_cap, self._tok + max(0, tokens))
