"""The judge's daily spend per project: estimated before a call, reconciled after it.

Estimates use ~3.5 characters per token (tiktoken needs a download this pipeline cannot
rely on); the prompt's estimate plus ``max_tokens`` is reserved before the call, so
concurrent calls cannot overrun the cap, and the reservation is replaced by ``usage``
afterwards. A share of the cap is kept for tail strata: bulk calls stop once the spend
reaches ``(1 - tail_budget_share) x cap``. Before that, bulk inclusion probabilities are
paced (:meth:`Budget.bulk_factor`) so the bulk share lasts the day rather than running out
at noon; the lowered probability is recorded on each decision.

The ledger lives in the scorer process: with several scorer replicas, each enforces the
cap on its own (configure cap / replicas), and a restart starts the day's ledger afresh.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from spanline.scorer.judging import metrics
from spanline.scorer.judging.config import JudgeSettings

_DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens (0/0 when the endpoint's model has no known price)."""

    input_per_mtok: float
    output_per_mtok: float

    @property
    def known(self) -> bool:
        return self.input_per_mtok > 0 or self.output_per_mtok > 0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


@dataclass(slots=True)
class Reservation:
    project: str
    tail: bool
    tokens: int
    usd: float
    day: int
    settled: bool = False


@dataclass(slots=True)
class _Ledger:
    day: int
    tokens: int = 0
    usd: float = 0.0


def estimate_tokens(chars: int, chars_per_token: float) -> int:
    return max(1, math.ceil(chars / chars_per_token))


class Budget:
    def __init__(self, settings: JudgeSettings, price: Price, clock: Callable[[], float] = time.time) -> None:
        """The budget and pacing series of the projects with a cap of their own are published
        from the start (their full budget, factor 1), so an alert or dashboard on a
        project's budget reads a series before its first judged trace; other projects'
        appear with their first trace."""
        self.settings = settings
        self.price = price
        self._clock = clock
        self._ledgers: dict[str, _Ledger] = {}
        for project in settings.project_daily_budget_usd:
            self._publish(project)
            self.bulk_factor(project)

    def _day(self) -> int:
        return int(self._clock() // _DAY_S)

    def _ledger(self, project: str) -> _Ledger:
        day = self._day()
        ledger = self._ledgers.get(project)
        if ledger is None or ledger.day != day:
            ledger = self._ledgers[project] = _Ledger(day)
        return ledger

    def _caps(self, project: str) -> tuple[float, int]:
        """(USD cap, token cap); 0 means no cap of that kind. USD needs a price."""
        usd = self.settings.budget_usd(project) if self.price.known else 0.0
        return usd, self.settings.daily_budget_tokens

    def _fractions_spent(self, project: str, extra_tokens: int = 0, extra_usd: float = 0.0) -> float:
        """The largest spent fraction over the active caps (0 with no cap at all)."""
        ledger = self._ledger(project)
        usd_cap, token_cap = self._caps(project)
        spent = 0.0
        if usd_cap > 0:
            spent = max(spent, (ledger.usd + extra_usd) / usd_cap)
        if token_cap > 0:
            spent = max(spent, (ledger.tokens + extra_tokens) / token_cap)
        return spent

    def bulk_factor(self, project: str) -> float:
        """Multiplier of bulk probabilities: 1 while spend keeps pace with the day.

        With s the spent fraction of the bulk share and d the fraction of the UTC day left,
        bulk can keep its rate while (1 - s) >= d; below that the rate is cut to the largest
        power of 1/2 not above (1 - s) / d, and to 0 once the bulk share is spent. Powers of
        two keep the number of distinct recorded probabilities small.
        """
        if self._caps(project) == (0.0, 0):
            factor = 1.0  # no cap: bulk keeps its design rate (published too, as 1)
        else:
            spent = self._fractions_spent(project) / (1.0 - self.settings.tail_budget_share)
            if spent >= 1.0:
                factor = 0.0
            else:
                now = self._clock()
                day_left = max(1e-9, 1.0 - (now % _DAY_S) / _DAY_S)
                raw = (1.0 - spent) / day_left
                factor = 1.0 if raw >= 1.0 else 2.0 ** math.floor(math.log2(max(raw, 1e-6)))
        metrics.BULK_FACTOR.labels(project=project).set(factor)
        return factor

    def reserve(self, project: str, tail: bool, input_tokens: int, output_tokens: int) -> Reservation | None:
        """Hold the estimate of one call, or None when the cap (or bulk's share of it) is reached."""
        tokens = input_tokens + output_tokens
        usd = self.price.cost(input_tokens, output_tokens)
        limit = 1.0 if tail else 1.0 - self.settings.tail_budget_share
        if self._fractions_spent(project, tokens, usd) > limit:
            return None
        ledger = self._ledger(project)
        ledger.tokens += tokens
        ledger.usd += usd
        self._publish(project)
        return Reservation(project, tail, tokens, usd, ledger.day)

    def settle(self, reservation: Reservation, input_tokens: int, output_tokens: int) -> float:
        """Replace the reservation by what ``usage`` says was used; returns that call's USD."""
        if reservation.settled:
            return 0.0
        reservation.settled = True
        usd = self.price.cost(input_tokens, output_tokens)
        ledger = self._ledger(reservation.project)
        if ledger.day == reservation.day:
            ledger.tokens += input_tokens + output_tokens - reservation.tokens
            ledger.usd += usd - reservation.usd
        self._publish(reservation.project)
        return usd

    def release(self, reservation: Reservation) -> None:
        """A call that used nothing (refused before the model ran): give the estimate back."""
        self.settle(reservation, 0, 0)

    def remaining(self, project: str) -> tuple[float | None, int | None]:
        """(USD left, tokens left); None where there is no cap of that kind."""
        ledger = self._ledger(project)
        usd_cap, token_cap = self._caps(project)
        return (
            max(0.0, usd_cap - ledger.usd) if usd_cap > 0 else None,
            max(0, token_cap - ledger.tokens) if token_cap > 0 else None,
        )

    def spent(self, project: str) -> tuple[float, int]:
        ledger = self._ledger(project)
        return ledger.usd, ledger.tokens

    def _publish(self, project: str) -> None:
        usd_left, tokens_left = self.remaining(project)
        if usd_left is not None:
            metrics.BUDGET_LEFT_USD.labels(project=project).set(usd_left)
        if tokens_left is not None:
            metrics.BUDGET_LEFT_TOKENS.labels(project=project).set(tokens_left)
