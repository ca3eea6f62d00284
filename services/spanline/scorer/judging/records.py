"""The scores the judge emits: verdicts, error scores and one sampling record per trace.

Every completed trace the judge stage sees gets a ``judge_sampling`` record (sampled or
not) carrying its stratum and inclusion probability. Counting those records per stratum
gives the population sizes N_h of any time window, so a weighted estimate can be
recomputed from stored scores alone; the record's id is a hash like every score id, so a
replay or a rebalance never counts a trace twice (a periodic per-stratum counter would).
"""

from __future__ import annotations

import time

from spanline.scorer.judging.evaluators import Evaluator
from spanline.scorer.judging.sampling import SamplingDecision
from spanline.scorer.scores import A_CLOSE_REASON, A_COMPLETE, A_ERROR_TYPE, KIND_LLM_JUDGE, new_score
from spanline.scorer.trace import CompletedTrace
from spanline.v1.spanline_pb2 import Score

SAMPLING_NAME = "judge_sampling"
SAMPLING_KIND = "sampling"
# part of the record's id: fixed, so a policy change never makes a second record of a trace
SAMPLING_RECORD_VERSION = "1"

A_PROBABILITY = "spanline.sampling.probability"
A_DESIGN_PROBABILITY = "spanline.sampling.design_probability"
A_STRATUM = "spanline.sampling.stratum"
A_POLICY = "spanline.sampling.policy_version"
A_IN_DESIGN = "spanline.sampling.in_design"
A_PACED = "spanline.sampling.paced"
A_JUDGE_MODEL = "spanline.judge.model"
A_REQUEST_MODEL = "gen_ai.request.model"
A_RESPONSE_ID = "gen_ai.response.id"
A_INPUT_TOKENS = "spanline.judge.input_tokens"
A_OUTPUT_TOKENS = "spanline.judge.output_tokens"
A_COST = "spanline.judge.cost_usd"
A_CALLS = "spanline.judge.calls"
A_MODE = "spanline.judge.output_mode"
A_REPAIRED = "spanline.judge.repaired"
A_INJECTION = "spanline.judge.injection_suspected"
A_TRUNCATED = "spanline.judge.input_truncated_chars"


def _sampling_attributes(trace: CompletedTrace, d: SamplingDecision) -> dict[str, str]:
    attrs = {
        A_STRATUM: d.stratum,
        A_PROBABILITY: repr(d.probability),
        A_POLICY: d.policy_version,
        A_IN_DESIGN: "true",
        A_CLOSE_REASON: trace.close_reason,
        A_COMPLETE: "true" if trace.complete else "false",
    }
    if d.paced:
        attrs[A_PACED] = "true"
        attrs[A_DESIGN_PROBABILITY] = repr(d.design_probability)
    return attrs


def sampling_record(trace: CompletedTrace, d: SamplingDecision, now_ns: int | None = None) -> Score:
    score = new_score(
        project_id=trace.project_id,
        trace_id=trace.trace_id,
        span_id=trace.score_span_id,
        name=SAMPLING_NAME,
        version=SAMPLING_RECORD_VERSION,
        kind=SAMPLING_KIND,
        value=1.0 if d.sampled else 0.0,
        label="sampled" if d.sampled else "not_sampled",
        time_unix_nano=now_ns or time.time_ns(),
        attributes=_sampling_attributes(trace, d),
    )
    score.sampling_reason = d.reason
    score.sampling_weight = d.weight
    return score


def judge_score(
    trace: CompletedTrace,
    ev: Evaluator,
    d: SamplingDecision,
    *,
    passed: bool | None,
    explanation: str = "",
    error_type: str = "",
    attributes: dict[str, str] | None = None,
    now_ns: int | None = None,
) -> Score:
    """A verdict (``passed`` set) or an error score (``error_type`` set, value 0, no label).

    Error scores share the verdict's id, so a later successful judgement of the same trace
    and evaluator version replaces the error row instead of adding one.
    """
    attrs = _sampling_attributes(trace, d)
    if attributes:
        attrs.update(attributes)
    if error_type:
        attrs[A_ERROR_TYPE] = error_type
    score = new_score(
        project_id=trace.project_id,
        trace_id=trace.trace_id,
        span_id=trace.score_span_id,
        name=ev.name,
        version=ev.version,
        kind=KIND_LLM_JUDGE,
        value=1.0 if passed else 0.0,
        label="" if passed is None else ("pass" if passed else "fail"),
        explanation=explanation,
        time_unix_nano=now_ns or time.time_ns(),
        attributes=attrs,
    )
    score.sampling_reason = d.reason
    score.sampling_weight = d.weight
    return score
