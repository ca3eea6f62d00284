"""Sampling decisions: tail strata at 1, hashed bulk strata, pacing recorded, reproducible."""

from __future__ import annotations

import math

import pytest

from spanline.scorer.judging.config import JudgeSettings
from spanline.scorer.judging.records import SAMPLING_NAME, sampling_record
from spanline.scorer.judging.sampling import SamplingPolicy, inclusion_key
from tests.support.judge_traces import chat_trace


def policy(**kw: object) -> SamplingPolicy:
    return SamplingPolicy(JudgeSettings(**kw))  # type: ignore[arg-type]


def test_tail_strata_are_judged_at_probability_one() -> None:
    p = policy(route_latency_ms={"support.chat": 500.0}, negative_feedback_below=0.5)
    cases = {
        "tail:error": chat_trace(1, error=True),
        "tail:negative_feedback": chat_trace(2, scores={"user_feedback": 0.0}),
        "tail:score:refusal": chat_trace(3, scores={"refusal": 1.0}),
        "tail:slow": chat_trace(4, latency_ms=900.0),
    }
    for stratum, trace in cases.items():
        d = p.decide(trace)
        assert (d.stratum, d.probability, d.sampled, d.weight) == (stratum, 1.0, True, 1.0)
    # the per-route threshold decides, not the default (30 s)
    assert not p.decide(chat_trace(5, latency_ms=900.0, route="other")).tail
    # positive feedback and scores below threshold stay in bulk
    assert not p.decide(chat_trace(6, latency_ms=100.0, scores={"user_feedback": 1.0, "refusal": 0.0})).tail


def test_bulk_strata_are_route_model_environment() -> None:
    d = policy().decide(chat_trace(1, route="a|b", model="m", environment=""))
    assert d.stratum == "bulk:a/b|m|-" and d.reason == "stratum" and d.probability == 0.05


def test_decision_is_a_reproducible_hash_near_the_configured_rate() -> None:
    p = policy(sample_rate=0.05)
    n = 20_000
    picked = [p.decide(chat_trace(i)).sampled for i in range(n)]
    assert picked == [p.decide(chat_trace(i)).sampled for i in range(n)]
    rate = sum(picked) / n
    assert abs(rate - 0.05) < 4 * math.sqrt(0.05 * 0.95 / n)
    # nesting: every trace drawn at 5% is drawn at 10%
    wider = policy(sample_rate=0.10)
    assert all(wider.decide(chat_trace(i)).sampled for i in range(n) if picked[i])
    # the project is part of the key
    assert inclusion_key("a", b"\x01" * 16) != inclusion_key("b", b"\x01" * 16)


def test_pacing_lowers_bulk_probability_and_records_it() -> None:
    p = policy(sample_rate=0.08, min_sample_rate=0.01)
    half = p.decide(chat_trace(1), bulk_factor=0.5)
    assert (half.probability, half.design_probability, half.paced) == (0.04, 0.08, True)
    floor = p.decide(chat_trace(1), bulk_factor=0.01)
    assert floor.probability == 0.01
    spent = p.decide(chat_trace(1), bulk_factor=0.0)
    assert spent.probability == 0.0 and not spent.sampled and spent.weight == 0.0
    record = sampling_record(chat_trace(1), spent)
    assert record.name == SAMPLING_NAME and record.score_label == "not_sampled"
    assert record.attributes["spanline.sampling.paced"] == "true"
    assert record.attributes["spanline.sampling.design_probability"] == "0.08"
    # tail strata are never paced
    assert p.decide(chat_trace(2, error=True), bulk_factor=0.0).probability == 1.0


def test_sampling_record_id_is_stable_across_policy_changes() -> None:
    a = sampling_record(chat_trace(7), policy(sample_rate=0.05).decide(chat_trace(7)))
    b = sampling_record(chat_trace(7), policy(sample_rate=0.5).decide(chat_trace(7)))
    assert a.score_id == b.score_id  # one population record per trace, whatever the policy
    assert (
        a.attributes["spanline.sampling.policy_version"] != b.attributes["spanline.sampling.policy_version"]
    )


def test_policy_version_follows_the_design() -> None:
    assert policy().version == policy().version
    assert policy(sample_rate=0.1).version != policy().version
    assert policy(policy_version="2026-q4").version == "2026-q4"


def test_min_rate_above_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="min_sample_rate"):
        JudgeSettings(sample_rate=0.01, min_sample_rate=0.02)
