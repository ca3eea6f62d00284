"""Which completed traces the judge sees, with a known inclusion probability for each.

Tail strata (errors, slow roots, a deterministic score past its threshold, negative
feedback) are judged at probability 1: they are rare and they are where failures live.
Every other trace falls in a bulk stratum (route x model x environment) judged at the
configured rate. Inclusion is a hash of (project, trace id) compared with the
probability, so a replay decides the same way, and samples nest as rates rise (the key is
shared by every evaluator). Each decision is recorded, sampled or not (see
:func:`spanline.scorer.judging.records.sampling_record`), which is what makes the
population counts N_h, and so weighted estimates, recomputable from stored scores.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from spanline.scorer.judging.config import JudgeSettings
from spanline.scorer.trace import CompletedTrace

_KEY_DOMAIN = b"spanline:judge:v1\x00"
_TOP53 = float(1 << 53)
_PART_MAX = 96

TAIL_REASONS = ("error", "negative_feedback", "score", "slow")


def inclusion_key(project_id: str, trace_id: bytes) -> float:
    """A uniform number in [0, 1) fixed by the trace: judge iff key < probability."""
    digest = hashlib.sha256(_KEY_DOMAIN + project_id.encode() + b"\x00" + trace_id).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / _TOP53


def _part(text: str) -> str:
    # `|` separates the parts of a stratum name; it must not appear inside one
    return (text or "-").replace("|", "/")[:_PART_MAX]


@dataclass(frozen=True, slots=True)
class SamplingDecision:
    stratum: str  # "tail:<reason>" or "bulk:<route>|<model>|<environment>"
    reason: str  # error | negative_feedback | score:<name> | slow | stratum
    design_probability: float  # what the policy asks for this stratum
    probability: float  # what was applied (lowered by pacing), recorded on the score
    key: float
    policy_version: str
    paced: bool = False

    @property
    def tail(self) -> bool:
        return self.stratum.startswith("tail:")

    @property
    def sampled(self) -> bool:
        return self.key < self.probability

    @property
    def weight(self) -> float:
        """Sampling weight 1/π of a judged trace (0 when the trace could not be drawn)."""
        return 1.0 / self.probability if self.probability > 0 else 0.0


class SamplingPolicy:
    """Stratum and probability of a trace; pure apart from the pacing factor it is given."""

    def __init__(self, settings: JudgeSettings) -> None:
        self.settings = settings
        self.version = settings.effective_policy_version()

    def tail_reason(self, trace: CompletedTrace) -> str:
        """Why a trace belongs to a tail stratum, or "" when it does not."""
        s = self.settings
        scores = trace.scores
        if scores.get("error", 0.0) >= 1.0 or any(sp.status_code == "ERROR" for sp in trace.spans):
            return "error"
        feedback = scores.get("user_feedback")
        if feedback is not None and feedback < s.negative_feedback_below:
            return "negative_feedback"
        for name in sorted(s.tail_scores):
            value = scores.get(name)
            if value is not None and value >= s.tail_scores[name]:
                return f"score:{name}"
        latency = scores.get("latency_ms")
        if latency is None and trace.root is not None:
            latency = trace.root.duration_ns / 1e6
        limit = s.route_latency_ms.get(trace.route, s.default_latency_ms)
        if latency is not None and latency > limit:
            return "slow"
        return ""

    def decide(self, trace: CompletedTrace, bulk_factor: float = 1.0) -> SamplingDecision:
        """The decision for ``trace``; ``bulk_factor`` < 1 is the budget pacing of bulk strata.

        A lowered probability is floored at ``min_sample_rate`` while any bulk budget is
        left (factor > 0) and is 0 once it is spent; either way it is the probability that
        is recorded, so estimates stay unbiased for as long as any trace of the stratum is
        judged.
        """
        key = inclusion_key(trace.project_id, trace.trace_id)
        reason = self.tail_reason(trace)
        if reason:
            head = reason.split(":", 1)[0]
            stratum = f"tail:{head}" if head != "score" else f"tail:{reason}"
            return SamplingDecision(stratum, reason, 1.0, 1.0, key, self.version)
        s = self.settings
        stratum = f"bulk:{_part(trace.route)}|{_part(trace.model)}|{_part(trace.environment)}"
        design = s.sample_rate
        if bulk_factor >= 1.0:
            return SamplingDecision(stratum, "stratum", design, design, key, self.version)
        applied = 0.0 if bulk_factor <= 0.0 else max(min(design, s.min_sample_rate), design * bulk_factor)
        return SamplingDecision(stratum, "stratum", design, applied, key, self.version, paced=True)
