"""Judge evaluators, defined in YAML: one rubric for ONE failure mode each, pass/fail out.

Binary verdicts per failure mode (not 1-5 scales) are what judges can be validated on
against human labels; several narrow evaluators beat one broad one. A bad file is refused
at start-up with the offending key named, because a typo here silently wastes budget on
the wrong question for days.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from spanline.core.yaml_file import YamlFileError, read_yaml_mapping

DEFAULT_FILE = "default_evaluators.yaml"

TraceInput = Literal["input", "output", "system", "tool_calls", "errors", "metadata"]
TRACE_INPUTS: tuple[TraceInput, ...] = ("input", "output", "system", "tool_calls", "errors", "metadata")


class EvaluatorError(Exception):
    """The evaluator file is unusable; the message names the file and the key."""


class Evaluator(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_.]{0,63}$", description="score name (low cardinality)")
    version: str = Field(pattern=r"^[A-Za-z0-9._-]{1,32}$", description="part of the score id: bump on edit")
    failure_mode: str = Field(min_length=3, max_length=300, description="the ONE failure this detects")
    rubric: str = Field(min_length=10, max_length=8000, description="when to answer fail, when pass")
    output: Literal["pass_fail"] = "pass_fail"
    inputs: tuple[TraceInput, ...] = Field(min_length=1, description=f"trace parts sent: {TRACE_INPUTS}")
    enabled: bool = True
    model: str = Field(default="", description="judge model for this evaluator; empty: the endpoint's")

    @field_validator("inputs")
    @classmethod
    def _unique(cls, v: tuple[TraceInput, ...]) -> tuple[TraceInput, ...]:
        if len(set(v)) != len(v):
            raise ValueError("an input is listed twice")
        return v


class EvaluatorFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    evaluators: list[Evaluator] = Field(min_length=1)

    @field_validator("evaluators")
    @classmethod
    def _unique_names(cls, v: list[Evaluator]) -> list[Evaluator]:
        names = [e.name for e in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"evaluator names repeated: {', '.join(dup)}")
        return v


def _describe(exc: ValidationError, data: dict[str, object]) -> str:
    lines = []
    for err in exc.errors():
        parts: list[str] = []
        for p in err["loc"]:
            if isinstance(p, int):
                parts[-1:] = [f"{parts[-1]}[{p}]"] if parts else [f"[{p}]"]
            else:
                parts.append(str(p))
        key = ".".join(parts) or "<root>"
        # name the evaluator too, so the message is actionable in a long file
        loc = err["loc"]
        if len(loc) >= 2 and loc[0] == "evaluators" and isinstance(loc[1], int):
            items = data.get("evaluators")
            if isinstance(items, list) and loc[1] < len(items) and isinstance(items[loc[1]], dict):
                name = items[loc[1]].get("name")
                if isinstance(name, str):
                    key += f" (evaluator {name!r})"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def load_evaluators(path: Path | None = None) -> list[Evaluator]:
    """The enabled evaluators of ``path`` (or the shipped defaults)."""
    if path is None:
        where = f"<bundled {DEFAULT_FILE}>"
        ref = resources.files("spanline.scorer.judging") / DEFAULT_FILE
        with resources.as_file(ref) as bundled:
            return load_evaluators_from(bundled, where)
    return load_evaluators_from(path, str(path))


def load_evaluators_from(path: Path, where: str) -> list[Evaluator]:
    try:
        data = read_yaml_mapping(path, "evaluator file")
    except YamlFileError as exc:
        raise EvaluatorError(str(exc)) from None
    try:
        parsed = EvaluatorFile.model_validate(data)
    except ValidationError as exc:
        raise EvaluatorError(f"invalid evaluator file {where}:\n{_describe(exc, data)}") from None
    enabled = [e for e in parsed.evaluators if e.enabled]
    if not enabled:
        raise EvaluatorError(f"evaluator file {where}: every evaluator is disabled (judge.enabled instead)")
    return enabled
