"""Score messages and their ids, shared by the heuristics and the judge.

A score id is a hash of (project, trace id, span id, evaluator name, evaluator version)
(docs/scoring.md): a replay or a rebalance re-emits the same id, which every sink
treats as the same row, so nothing is ever counted twice.
"""

from __future__ import annotations

import hashlib

from spanline.v1.spanline_pb2 import Score

KIND_HEURISTIC = "heuristic"
KIND_LLM_JUDGE = "llm_judge"

A_VERSION = "spanline.evaluation.version"
A_SOURCE = "spanline.evaluation.source"
A_CLOSE_REASON = "spanline.trace.completion_reason"
A_COMPLETE = "spanline.trace.complete"
A_LATE_FRAGMENT = "spanline.trace.late_fragment"
A_ERROR_TYPE = "error.type"


def score_id(project_id: str, trace_id: bytes, span_id: bytes, name: str, version: str) -> str:
    """32 hex characters; fields are NUL-separated so no two tuples hash the same text."""
    text = "\0".join((project_id, trace_id.hex(), span_id.hex(), name, version))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def new_score(
    *,
    project_id: str,
    trace_id: bytes,
    span_id: bytes,
    name: str,
    version: str,
    kind: str,
    value: float,
    label: str = "",
    explanation: str = "",
    time_unix_nano: int = 0,
    attributes: dict[str, str] | None = None,
) -> Score:
    score = Score(
        score_id=score_id(project_id, trace_id, span_id, name, version),
        project_id=project_id,
        trace_id=trace_id,
        span_id=span_id,
        name=name,
        score_value=value,
        score_label=label,
        explanation=explanation,
        evaluator_kind=kind,
        time_unix_nano=time_unix_nano,
    )
    score.attributes[A_VERSION] = version
    if attributes:
        score.attributes.update(attributes)
    return score
