"""Score messages and their ids, shared by the heuristics and the judge.

A score id is a hash of (project, trace id, span id, evaluator name, evaluator version)
(docs/scoring.md): a replay or a rebalance re-emits the same id, which every sink
treats as the same row, so nothing is ever counted twice.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

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


@lru_cache(maxsize=256)
def _attribute_entries(items: tuple[tuple[str, str], ...]) -> bytes:
    """``attributes`` map entries as serialized fields of a Score (they recur: built once)."""
    return Score(attributes=dict(items)).SerializeToString()


def trace_score_values(
    *,
    project_id: str,
    trace_id: bytes,
    span_id: bytes,
    kind: str,
    time_unix_nano: int,
    attributes: dict[str, str],
    results: list[tuple[str, str, float, str, str]],
) -> list[bytes]:
    """Serialized scores of one trace, one per (name, version, value, label, explanation):
    each equal, once parsed, to :func:`new_score` with the same fields.

    The fields every score of the trace shares are serialized once; each score adds only
    its own. Protobuf parses concatenated messages as one merged message (scalars: last
    wins, map entries: added), and the parts set disjoint fields and map keys.
    """
    common = Score(
        project_id=project_id,
        trace_id=trace_id,
        span_id=span_id,
        evaluator_kind=kind,
        time_unix_nano=time_unix_nano,
    ).SerializeToString() + _attribute_entries(tuple((k, v) for k, v in attributes.items() if k != A_VERSION))
    trace_hex = trace_id.hex()
    span_hex = span_id.hex()
    sha256 = hashlib.sha256
    out = []
    for name, version, value, label, explanation in results:
        text = "\0".join((project_id, trace_hex, span_hex, name, version))
        own = Score(
            score_id=sha256(text.encode("utf-8")).hexdigest()[:32],
            name=name,
            score_value=value,
            score_label=label,
            explanation=explanation,
        )
        out.append(common + own.SerializeToString() + _attribute_entries(((A_VERSION, version),)))
    return out
