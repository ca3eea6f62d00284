"""Settings of the LLM judge (section `scorer.judge`, env `SPANLINE_SCORER_JUDGE_*`).

The top-level settings split env names once (``env_nested_max_split=1``), so
``SPANLINE_SCORER_JUDGE_BASE_URL`` reaches the scorer section as the key
``judge_base_url``; the scorer section folds such keys into this one. Values of mapping
fields then arrive as text (``SPANLINE_SCORER_JUDGE_ROUTE_LATENCY_MS='{"/chat": 8000}'``)
and are JSON-decoded here, as pydantic-settings does for top-level complex fields.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from spanline.core.settings import Section


class JudgeSettings(Section):
    enabled: bool = Field(default=False, description="run the LLM judge on sampled traces")
    base_url: str = Field(
        default="", description="OpenAI-compatible endpoint (https://api.openai.com/v1, llama.cpp...)"
    )
    model: str = Field(default="", description="judge model sent to the endpoint")
    api_key: SecretStr | None = Field(default=None, description="endpoint API key (secret)")
    evaluators_file: Path | None = Field(
        default=None, description="evaluator YAML; unset: the shipped default evaluators"
    )
    # sampling
    sample_rate: float = Field(
        default=0.05, ge=0, le=1, description="inclusion probability of the bulk strata (route x model x env)"
    )
    min_sample_rate: float = Field(
        default=0.005, ge=0, le=1, description="floor of bulk probabilities while pacing (0 once spent)"
    )
    default_latency_ms: float = Field(
        default=30_000, gt=0, description="a root slower than this is a tail trace (judged at probability 1)"
    )
    route_latency_ms: dict[str, float] = Field(
        default_factory=dict, description="per-route (root span name) slow thresholds, overriding the default"
    )
    tail_scores: dict[str, float] = Field(
        default_factory=lambda: {
            "error": 1.0,
            "tool_errors": 1.0,
            "empty_output": 1.0,
            "refusal": 1.0,
            "truncated": 1.0,
            "invalid_json": 1.0,
        },
        description="deterministic score name -> value at or above which the trace is a tail trace",
    )
    negative_feedback_below: float = Field(
        default=0.5,
        description="`user_feedback` below this (0 negative, 0.5 neutral, 1 positive) makes a tail trace",
    )
    policy_version: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._:+-]*$",
        description="recorded on every judged score; unset: derived from the sampling settings",
    )
    # budget
    daily_budget_usd: float = Field(
        default=5.0, ge=0, description="judge spend cap per project per UTC day (0: no USD cap)"
    )
    daily_budget_tokens: int = Field(
        default=0, ge=0, description="token cap per project per UTC day, for self-hosted endpoints (0: none)"
    )
    project_daily_budget_usd: dict[str, float] = Field(
        default_factory=dict, description="per-project USD caps overriding daily_budget_usd"
    )
    tail_budget_share: float = Field(
        default=0.3, ge=0, lt=1, description="share of each day's budget only tail strata may spend"
    )
    price_input_per_mtok: float | None = Field(
        default=None, ge=0, description="USD per million input tokens; unset: the pricing table by model"
    )
    price_output_per_mtok: float | None = Field(
        default=None, ge=0, description="USD per million output tokens; unset: the pricing table by model"
    )
    chars_per_token: float = Field(
        default=3.5, gt=0.5, le=10, description="token estimate before a call (tiktoken cannot run offline)"
    )
    # rate and retries
    rpm: int = Field(default=60, ge=1, description="client-side requests per minute to the endpoint")
    tpm: int = Field(default=100_000, ge=100, description="client-side tokens per minute to the endpoint")
    concurrency: int = Field(default=4, ge=1, le=256, description="judge calls in flight")
    timeout_s: float = Field(default=60.0, gt=0, description="read timeout of one judge call")
    connect_timeout_s: float = Field(default=5.0, gt=0, description="connect timeout of one judge call")
    max_attempts: int = Field(default=4, ge=1, le=20, description="tries of one call on 429/5xx/timeouts")
    backoff_initial_s: float = Field(default=1.0, ge=0, description="first retry delay (doubles each try)")
    backoff_max_s: float = Field(default=30.0, ge=0, description="longest retry delay")
    retry_after_max_s: float = Field(
        default=60.0, ge=0, description="longest Retry-After honoured; a longer one ends the tries"
    )
    pause_s: float = Field(
        default=300.0, gt=0, description="an evaluator is paused this long after 401/403/unknown model"
    )
    # the call
    max_tokens: int = Field(default=256, ge=16, le=8192, description="judge output tokens per call")
    temperature: float = Field(default=0.0, ge=0, le=2)
    seed: int | None = Field(default=0, description="sent when the endpoint supports it; null: not sent")
    max_input_chars: int = Field(
        default=24_000, ge=500, description="trace content per call; longer content is cut with a marker"
    )
    output_mode: Literal["auto", "json_schema", "json_object", "text"] = Field(
        default="auto",
        description="auto tries JSON-schema structured output, then JSON mode, then extraction from text",
    )

    @model_validator(mode="before")
    @classmethod
    def _json_mappings(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, value in data.items():
            field = cls.model_fields.get(name)
            if field is None or not isinstance(value, str):
                continue
            if str(field.annotation).startswith("dict"):
                try:
                    out[name] = json.loads(value)
                except ValueError:
                    pass  # left as text: validation names the key
        return out

    @model_validator(mode="after")
    def _endpoint_when_enabled(self) -> JudgeSettings:
        if self.enabled and (not self.base_url or not self.model):
            missing = [k for k in ("base_url", "model") if not getattr(self, k)]
            raise ValueError(f"judge enabled without {' and '.join(missing)}")
        if self.min_sample_rate > self.sample_rate:
            raise ValueError("min_sample_rate is above sample_rate")
        return self

    def effective_policy_version(self) -> str:
        """The configured version, or a digest of everything that decides inclusion probabilities.

        Estimates group judged scores by stratum; two sampling designs must never be mixed
        silently, so a change of rate or thresholds changes the recorded version by itself.
        """
        if self.policy_version:
            return self.policy_version
        design = {
            "sample_rate": self.sample_rate,
            "min_sample_rate": self.min_sample_rate,
            "route_latency_ms": self.route_latency_ms,
            "default_latency_ms": self.default_latency_ms,
            "tail_scores": self.tail_scores,
            "negative_feedback_below": self.negative_feedback_below,
        }
        digest = hashlib.sha256(json.dumps(design, sort_keys=True).encode()).hexdigest()[:8]
        return f"p1-{digest}"

    def budget_usd(self, project: str) -> float:
        return self.project_daily_budget_usd.get(project, self.daily_budget_usd)


def nest_prefixed_keys(data: Any, section: str, model: type[BaseModel]) -> Any:
    """Move ``<section>_<field>`` keys of a raw mapping into ``data[section]``.

    Env keys override the same keys of a nested mapping from the YAML file (env wins, as
    everywhere else in the settings).
    """
    if not isinstance(data, dict):
        return data
    prefix = section + "_"
    moved: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = key[len(prefix) :].lower() if isinstance(key, str) and key.lower().startswith(prefix) else ""
        if name and name in model.model_fields:
            moved[name] = value
        else:
            out[key] = value
    if not moved:
        return data
    nested = out.get(section)
    if isinstance(nested, BaseModel):
        nested = nested.model_dump()
    merged = dict(nested) if isinstance(nested, dict) else {}
    merged.update(moved)
    out[section] = merged
    return out
