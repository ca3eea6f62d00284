"""Settings of the scorer service (section ``scorer``, env ``SPANLINE_SCORER_*``).

Window timeouts and bounds are settings (not constants) so tests run with short ones and
operators can trade latency of a score against completeness of its trace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from spanline.core.settings import Section
from spanline.scorer.judging.config import JudgeSettings, nest_prefixed_keys

HEURISTIC_NAMES = (
    "error",
    "latency_ms",
    "ttft_ms",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "tool_errors",
    "empty_output",
    "refusal",
    "truncated",
    "invalid_json",
    "user_feedback",
)

DEFAULT_REFUSAL_PHRASES = (
    "i can't help with",
    "i cannot help with",
    "i can't assist",
    "i cannot assist",
    "i'm unable to help",
    "i am unable to help",
    "i'm sorry, but i can't",
    "i'm sorry, but i cannot",
    "i won't be able to help",
    "as an ai language model, i cannot",
)


class HeuristicSettings(Section):
    """Which deterministic scorers run and where their pass/fail thresholds sit."""

    disabled: list[str] = Field(
        default_factory=list, description=f"heuristics not to run; names: {', '.join(HEURISTIC_NAMES)}"
    )
    latency_ms_threshold: float = Field(
        default=30_000, gt=0, description="latency_ms above this is labelled `slow` (else `ok`)"
    )
    ttft_ms_threshold: float = Field(default=5_000, gt=0, description="ttft_ms above this is `slow`")
    cost_usd_threshold: float = Field(default=1.0, gt=0, description="cost_usd above this is `high`")
    tokens_threshold: int = Field(
        default=100_000, gt=0, description="input/output_tokens above this are labelled `high`"
    )
    refusal_phrases: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REFUSAL_PHRASES),
        description="case-insensitive phrases; a final output containing one scores refusal=1",
    )

    @model_validator(mode="after")
    def _known_names(self) -> HeuristicSettings:
        unknown = sorted(set(self.disabled) - set(HEURISTIC_NAMES))
        if unknown:
            raise ValueError(f"unknown heuristic(s) {unknown}; known: {', '.join(HEURISTIC_NAMES)}")
        return self


class ScorerSettings(Section):
    quiet_after_root_s: float = Field(
        default=30.0, gt=0, description="a trace whose root span arrived closes after this long without spans"
    )
    quiet_no_root_s: float = Field(
        default=180.0, gt=0, description="a trace without a root span closes after this long without spans"
    )
    max_trace_age_s: float = Field(
        default=900.0, gt=0, description="a trace is closed this long after its first span at the latest"
    )
    max_open_traces: int = Field(
        default=50_000, ge=1, description="open traces per consumer; beyond it the oldest closes (evicted)"
    )
    max_open_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="bytes held by open traces per consumer: span facts (~0.33 KB a span), and the "
        "messages too when the judge is on (oldest evicted)",
    )
    max_trace_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="a trace holding more than this closes at once (oversized)",
    )
    decision_cache_size: int = Field(
        default=500_000, ge=1, description="decided trace ids remembered, so a late span is a late fragment"
    )
    tick_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="how often windows are checked when no message arrives"
    )
    close_open_on_stop: bool = Field(
        default=False,
        description="on stop, score open traces (reason `revoked`) instead of leaving them to a replay; "
        "`spanline up` sets it, since its in-memory broker would lose them",
    )
    batch_max_records: int = Field(default=2_000, ge=1, description="messages per processed batch")
    batch_max_wait_s: float = Field(default=0.2, gt=0, le=60, description="wait to fill a batch")
    span_builder: Literal["auto", "compiled", "python"] = Field(
        default="auto", description="span decoder (the writer's builders): compiled when built"
    )
    pricing_file: Path | None = Field(
        default=None, description="JSON or YAML prices extending the bundled table (as writer.pricing_file)"
    )
    heuristics: HeuristicSettings = HeuristicSettings()
    projects: dict[str, HeuristicSettings] = Field(
        default_factory=dict, description="per project: heuristics settings replacing `heuristics`"
    )
    pending_judge_max: int = Field(
        default=1_000, ge=1, description="traces waiting for the judge; beyond it judging is abandoned"
    )
    pending_judge_timeout_s: float = Field(
        default=600.0, gt=0, description="judge work per trace longer than this is abandoned (error score)"
    )
    judge: JudgeSettings = JudgeSettings()

    @model_validator(mode="before")
    @classmethod
    def _judge_env_keys(cls, data: Any) -> Any:
        return nest_prefixed_keys(data, "judge", JudgeSettings)

    def heuristics_for(self, project: str) -> HeuristicSettings:
        return self.projects.get(project, self.heuristics)
