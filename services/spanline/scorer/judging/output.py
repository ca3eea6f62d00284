"""The judge's answer: one JSON object, validated; never a guessed verdict.

The schema puts the explanation before the verdict so the model reasons before it
decides (decoding is left to right). Anything that is not a valid object of this shape is
:class:`InvalidOutput`; the caller gets one repair try and otherwise records an
``error.type``, never a default pass or fail.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

EXPLANATION_MAX = 1000

VerdictLabel = Literal["pass", "fail"]
"""What a judge may answer (the schema's enum and the verdicts metric's labels)."""

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "explanation": {"type": "string", "maxLength": 600},
        "verdict": {"type": "string", "enum": list(get_args(VerdictLabel))},
        "injection_suspected": {"type": "boolean"},
    },
    "required": ["explanation", "verdict", "injection_suspected"],
    "additionalProperties": False,
}


class InvalidOutput(Exception):
    """The model's reply is not a valid verdict object; ``reason`` is short and fixed-form."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Verdict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    explanation: str
    verdict: VerdictLabel
    injection_suspected: bool = False

    @field_validator("explanation")
    @classmethod
    def _bounded(cls, v: str) -> str:
        return v.strip()[:EXPLANATION_MAX]

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def _objects(text: str) -> list[str]:
    """Balanced ``{...}`` spans of ``text`` (strings honoured), outermost first."""
    found: list[str] = []
    depth = 0
    start = -1
    in_str = False
    escaped = False
    for i, ch in enumerate(text):
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = depth > 0
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                found.append(text[start : i + 1])
    return found


def extract_json(text: str) -> str | None:
    """The JSON object in a free-text reply (code fence or the first object with a verdict)."""
    for candidate in (*_FENCE.findall(text), text):
        for obj in _objects(candidate):
            if '"verdict"' in obj:
                return obj
    return None


def parse_verdict(text: str | None, *, extract: bool = False) -> Verdict:
    """Validate a reply; ``extract`` also looks for the object inside surrounding prose."""
    if text is None or not text.strip():
        raise InvalidOutput("empty")
    raw = text.strip()
    try:
        data = json.loads(raw)
    except ValueError:
        found = extract_json(raw) if extract else None
        if found is None:
            raise InvalidOutput("not_json") from None
        try:
            data = json.loads(found)
        except ValueError:
            raise InvalidOutput("not_json") from None
    if not isinstance(data, dict):
        raise InvalidOutput("not_object")
    # tiny models sometimes answer "PASS" / "Fail": case is not worth a failed verdict
    if isinstance(data.get("verdict"), str):
        data["verdict"] = data["verdict"].strip().lower()
    try:
        return Verdict.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "object"
        raise InvalidOutput(f"schema:{field}") from None
