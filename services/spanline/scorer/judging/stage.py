"""The judge stage of the scorer: completed trace in, judge scores out, never an exception.

For each completed trace: decide (stratum, inclusion probability, paced by the budget),
emit the sampling record, and when sampled run every evaluator: build the fenced prompt,
reserve the estimated spend, call the endpoint, validate the verdict (one repair try),
settle the spend with ``usage``. Every way a judgement can fail ends in a score carrying
``error.type`` (nonresponse the estimators can see), never in a default verdict and never
in an exception that could stall deterministic scoring or offset commits.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from spanline.scorer.judging import metrics
from spanline.scorer.judging.budget import Budget, Price, estimate_tokens
from spanline.scorer.judging.client import Completion, JudgeCallError, JudgeClient
from spanline.scorer.judging.config import JudgeSettings
from spanline.scorer.judging.evaluators import Evaluator, load_evaluators
from spanline.scorer.judging.output import InvalidOutput, Verdict, parse_verdict
from spanline.scorer.judging.prompt import Prompt, build_prompt, repair_messages
from spanline.scorer.judging.records import (
    A_CALLS,
    A_COST,
    A_INJECTION,
    A_INPUT_TOKENS,
    A_JUDGE_MODEL,
    A_MODE,
    A_OUTPUT_TOKENS,
    A_REPAIRED,
    A_REQUEST_MODEL,
    A_RESPONSE_ID,
    A_TRUNCATED,
    judge_score,
    sampling_record,
)
from spanline.scorer.judging.sampling import SamplingDecision, SamplingPolicy
from spanline.scorer.trace import CompletedTrace
from spanline.spans.pricing import PricingTable
from spanline.v1.spanline_pb2 import Score

log = logging.getLogger("spanline.scorer.judge")

# text in trace content that addresses an evaluator: recorded, never acted on
_INJECTION_MARKERS = re.compile(
    r"ignore (?:all |the |any |previous |prior |above |your )*(?:instructions|rubric|rules)"
    r"|(?:answer|output|respond|return|say)\s+\W?pass\b|note to the (?:grader|evaluator|judge)",
    re.IGNORECASE,
)


def resolve_price(settings: JudgeSettings, pricing: PricingTable | None = None) -> Price:
    """Configured prices, else the pricing table's for the judge model, else unknown (0/0)."""
    if settings.price_input_per_mtok is not None or settings.price_output_per_mtok is not None:
        return Price(settings.price_input_per_mtok or 0.0, settings.price_output_per_mtok or 0.0)
    table = pricing or PricingTable.load()
    found = table.lookup("", settings.model)
    return Price(found.input, found.output) if found is not None else Price(0.0, 0.0)


@dataclass(slots=True)
class _Usage:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    last: Completion | None = None
    mode: str = ""

    def attributes(self, request_model: str) -> dict[str, str]:
        attrs = {
            A_REQUEST_MODEL: request_model,
            A_CALLS: str(self.calls),
            A_INPUT_TOKENS: str(self.input_tokens),
            A_OUTPUT_TOKENS: str(self.output_tokens),
            A_COST: f"{self.cost_usd:.8f}",
        }
        if self.last is not None:
            attrs[A_JUDGE_MODEL] = self.last.model or request_model
            attrs[A_MODE] = self.last.mode
            if self.last.response_id:
                attrs[A_RESPONSE_ID] = self.last.response_id
        return attrs


class _Failed(Exception):
    def __init__(self, error_type: str) -> None:
        super().__init__(error_type)
        self.error_type = error_type


@dataclass(slots=True)
class _Pauses:
    until: dict[str, float] = field(default_factory=dict)

    def active(self, name: str, now: float) -> bool:
        end = self.until.get(name)
        if end is None:
            return False
        if now >= end:
            del self.until[name]
            metrics.PAUSED.labels(evaluator=name).set(0)
            log.info("judge evaluator resumed", extra={"evaluator": name})
            return False
        return True


class JudgeStage:
    def __init__(
        self,
        settings: JudgeSettings,
        *,
        evaluators: list[Evaluator] | None = None,
        pricing: PricingTable | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Raises :class:`~spanline.scorer.judging.evaluators.EvaluatorError` on a bad evaluator file."""
        self.settings = settings
        self.evaluators = evaluators if evaluators is not None else load_evaluators(settings.evaluators_file)
        metrics.create_known_series(ev.name for ev in self.evaluators)
        self.policy = SamplingPolicy(settings)
        self.budget = Budget(settings, resolve_price(settings, pricing), clock)
        self.client = JudgeClient(settings, sleep=sleep)
        self._clock = clock
        self._monotonic = monotonic
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._pauses = _Pauses()

    async def evaluate(self, trace: CompletedTrace) -> list[Score]:
        """The sampling record plus one score per evaluator when sampled; [] for late fragments.

        A late fragment belongs to a trace already decided: judging it again would be a
        second call for one trace, and recording it again would count it twice in N_h.
        """
        if trace.late_fragment:
            return []
        decision = self.policy.decide(trace, self.budget.bulk_factor(trace.project_id))
        kind = "bulk" if not decision.tail else decision.reason.split(":", 1)[0]
        if decision.sampled:
            outcome = "sampled"
        elif decision.paced and decision.key < decision.design_probability:
            outcome = "paced_out"
        else:
            outcome = "skipped"
        metrics.TRACES.labels(stratum_kind=kind, decision=outcome).inc()
        now_ns = int(self._clock() * 1e9)
        scores = [sampling_record(trace, decision, now_ns)]
        if decision.sampled:
            judged = await asyncio.gather(
                *(self._evaluate_one(trace, ev, decision) for ev in self.evaluators)
            )
            scores.extend(judged)
        return scores

    async def _evaluate_one(self, trace: CompletedTrace, ev: Evaluator, d: SamplingDecision) -> Score:
        usage = _Usage()
        model = ev.model or self.settings.model
        try:
            verdict, prompt, repaired = await self._judge(trace, ev, d, usage, model)
        except _Failed as exc:
            return self._error(trace, ev, d, exc.error_type, usage, model)
        except Exception as exc:  # a bug must cost one score, never the trace's other scores
            log.exception("judge evaluator failed unexpectedly", extra={"evaluator": ev.name})
            return self._error(trace, ev, d, type(exc).__name__, usage, model)
        attrs = usage.attributes(model)
        attrs[A_REPAIRED] = "true" if repaired else "false"
        marker = bool(_INJECTION_MARKERS.search(prompt.messages[1]["content"]))
        attrs[A_INJECTION] = "true" if (verdict.injection_suspected or marker) else "false"
        if prompt.truncated_chars:
            attrs[A_TRUNCATED] = str(prompt.truncated_chars)
        metrics.VERDICTS.labels(evaluator=ev.name, label=verdict.verdict).inc()
        now_ns = int(self._clock() * 1e9)
        return judge_score(
            trace,
            ev,
            d,
            passed=verdict.passed,
            explanation=verdict.explanation,
            attributes=attrs,
            now_ns=now_ns,
        )

    def _error(
        self,
        trace: CompletedTrace,
        ev: Evaluator,
        d: SamplingDecision,
        error_type: str,
        usage: _Usage,
        model: str,
    ) -> Score:
        metrics.ERRORS.labels(evaluator=ev.name, error_type=error_type).inc()
        metrics.VERDICTS.labels(evaluator=ev.name, label=metrics.ERROR_LABEL).inc()
        now_ns = int(self._clock() * 1e9)
        return judge_score(
            trace,
            ev,
            d,
            passed=None,
            error_type=error_type,
            attributes=usage.attributes(model),
            now_ns=now_ns,
        )

    async def _judge(
        self, trace: CompletedTrace, ev: Evaluator, d: SamplingDecision, usage: _Usage, model: str
    ) -> tuple[Verdict, Prompt, bool]:
        if self._pauses.active(ev.name, self._monotonic()):
            raise _Failed("evaluator_paused")
        prompt = build_prompt(ev, trace, self.settings.max_input_chars)
        first = await self._call(trace, ev, d, prompt.messages, usage, model)
        try:
            return self._parse(first), prompt, False
        except InvalidOutput as exc:
            reason = exc.reason
        # one repair try: the model sees its reply and what was wrong with it
        second = await self._call(
            trace, ev, d, repair_messages(prompt, first.text or "", reason), usage, model
        )
        try:
            return self._parse(second), prompt, True
        except InvalidOutput:
            raise _Failed(self._failure_type(second)) from None

    def _parse(self, completion: Completion) -> Verdict:
        if completion.refusal:
            raise InvalidOutput("refused")
        if completion.finish_reason == "length":
            raise InvalidOutput("truncated")
        return parse_verdict(completion.text, extract=completion.mode == "text")

    @staticmethod
    def _failure_type(completion: Completion) -> str:
        if completion.refusal:
            return "refused"
        if completion.finish_reason == "length":
            return "truncated"
        if completion.finish_reason == "content_filter":
            return "content_filter"
        return "invalid_output"

    async def _call(
        self,
        trace: CompletedTrace,
        ev: Evaluator,
        d: SamplingDecision,
        messages: list[dict[str, str]],
        usage: _Usage,
        model: str,
    ) -> Completion:
        s = self.settings
        chars = sum(len(m["content"]) for m in messages)
        est_in = estimate_tokens(chars, s.chars_per_token) + 8 * len(messages)
        reservation = self.budget.reserve(trace.project_id, d.tail, est_in, s.max_tokens)
        if reservation is None:
            raise _Failed("budget_exhausted")
        async with self._slots:
            try:
                completion = await self.client.complete(
                    messages, model=model, evaluator=ev.name, estimated_tokens=est_in + s.max_tokens
                )
            except JudgeCallError as exc:
                # a timed-out request may still have run on the server: keep its input charged
                if exc.error_type == "timeout":
                    usage.cost_usd += self.budget.settle(reservation, est_in, 0)
                else:
                    self.budget.release(reservation)
                if exc.pause:
                    self._pause(ev, exc)
                raise _Failed(exc.error_type) from None
        in_tokens = completion.input_tokens if completion.usage_known else est_in
        out_tokens = (
            completion.output_tokens
            if completion.usage_known
            else estimate_tokens(len(completion.text or ""), s.chars_per_token)
        )
        cost = self.budget.settle(reservation, in_tokens, out_tokens)
        self.client.refund(est_in + s.max_tokens - in_tokens - out_tokens)
        if completion.usage_known and est_in > 0:
            metrics.ESTIMATE_RATIO.observe(completion.input_tokens / est_in)
        metrics.TOKENS.labels(evaluator=ev.name, direction="input").inc(in_tokens)
        metrics.TOKENS.labels(evaluator=ev.name, direction="output").inc(out_tokens)
        metrics.COST.labels(evaluator=ev.name).inc(cost)
        usage.calls += 1
        usage.input_tokens += in_tokens
        usage.output_tokens += out_tokens
        usage.cost_usd += cost
        usage.last = completion
        return completion

    def _pause(self, ev: Evaluator, exc: JudgeCallError) -> None:
        self._pauses.until[ev.name] = self._monotonic() + self.settings.pause_s
        metrics.PAUSED.labels(evaluator=ev.name).set(1)
        log.error(
            "judge evaluator paused: the endpoint refused its credentials or model",
            extra={
                "evaluator": ev.name,
                "error_type": exc.error_type,
                "status": exc.status,
                "pause_s": self.settings.pause_s,
            },
        )

    def paused(self, name: str) -> bool:
        return self._pauses.active(name, self._monotonic())

    async def close(self) -> None:
        await self.client.close()
