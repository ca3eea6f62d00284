"""Write-time cost from a versioned price table.

Prices live in data files (``pricing/pricing-v1.json`` bundled; ``writer.pricing_file`` for
a deployment's own entries), never in code, so a price change is a reviewed data change
and every row records which table priced it (``pricing_version``). A model with no entry
gets cost NULL and is counted: a guessed cost is worse than a missing one.

Token semantics follow OTel GenAI: ``input_tokens`` includes cached input tokens and
``output_tokens`` includes reasoning tokens, so cost is::

    (input - cached) * input_price + cached * cached_price
    + (output - reasoning) * output_price + reasoning * reasoning_price
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from spanline.spans.metrics import COST_UNKNOWN_MODEL

BUNDLED_FILE = "pricing-v1.json"

# provider names seen in the wild (semconv values, SDK spellings) -> one canonical name
_PROVIDER_CANON = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "gemini": "google",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "google_genai": "google",
    "mistral": "mistral",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "azure": "azure",
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "azure_openai": "azure",
    "aws.bedrock": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "x_ai": "xai",
    "xai": "xai",
    "ollama": "ollama",
    "perplexity": "perplexity",
    "ibm.watsonx.ai": "ibm",
    "openrouter": "openrouter",
}
# metric label values are bounded to these
METRIC_PROVIDERS = frozenset({*_PROVIDER_CANON.values(), "other", "none"})

_SUFFIXES = (
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # gpt-4o-2024-08-06
    re.compile(r"-\d{8}$"),  # claude-3-5-sonnet-20241022
    re.compile(r"-latest$"),  # mistral-large-latest
    re.compile(r"-\d{4}$"),  # mistral-large-2411, gpt-4-0613
)
_BEDROCK_ID = re.compile(
    r"^(?:(?:us|eu|apac|global)\.)?(?:anthropic|meta|mistral|amazon|cohere|ai21)\.(.+?)(?:-v\d+(?::\d+)?)?$"
)


def canonical_provider(provider: str) -> str:
    p = provider.strip().lower()
    return _PROVIDER_CANON.get(p, p)


def metric_provider(provider: str) -> str:
    if not provider:
        return "none"
    canon = canonical_provider(provider)
    return canon if canon in METRIC_PROVIDERS else "other"


def model_candidates(model: str) -> list[str]:
    """Spellings to try, most specific first: exact, then without routing prefixes and date tags."""
    m = model.strip().lower()
    out = [m]
    if m.startswith("models/"):
        m = m[len("models/") :]
    if "/" in m:  # openrouter style "openai/gpt-4o"
        m = m.rsplit("/", 1)[1]
    bedrock = _BEDROCK_ID.match(m)
    if bedrock:
        m = bedrock.group(1)
    if "@" in m:  # vertex "claude-3-5-sonnet@20240620"
        m = m.split("@", 1)[0]
    if m not in out:
        out.append(m)
    changed = True
    while changed:
        changed = False
        for pattern in _SUFFIXES:
            stripped = pattern.sub("", m)
            if stripped != m and stripped:
                m = stripped
                changed = True
                if m not in out:
                    out.append(m)
                break
    return out


@dataclass(frozen=True, slots=True)
class ModelPrice:
    provider: str
    model: str
    input: float
    output: float
    cached_input: float | None = None
    reasoning: float | None = None

    def cost(
        self,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_input_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> float:
        inp = input_tokens or 0
        out = output_tokens or 0
        cached = min(cached_input_tokens or 0, inp)
        reasoning = min(reasoning_tokens or 0, out)
        cached_price = self.input if self.cached_input is None else self.cached_input
        reasoning_price = self.output if self.reasoning is None else self.reasoning
        total = (
            (inp - cached) * self.input
            + cached * cached_price
            + (out - reasoning) * self.output
            + reasoning * reasoning_price
        )
        return total / 1_000_000.0


class PricingError(ValueError):
    """A pricing file is malformed; the message names the file and the entry."""


def _parse_entries(data: Any, source: str) -> list[ModelPrice]:
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise PricingError(f"{source}: expected a mapping with a 'models' list")
    out = []
    for i, entry in enumerate(data["models"]):
        where = f"{source}: models[{i}]"
        if not isinstance(entry, dict):
            raise PricingError(f"{where}: expected a mapping")
        try:
            provider = canonical_provider(str(entry["provider"]))
            model = str(entry["model"]).strip().lower()
            prices = {k: entry.get(k) for k in ("input", "output", "cached_input", "reasoning")}
            if prices["input"] is None or prices["output"] is None:
                raise KeyError("input/output")
            values = {k: (None if v is None else float(v)) for k, v in prices.items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise PricingError(f"{where}: needs provider, model, input, output (numbers): {exc}") from None
        if any(v is not None and v < 0 for v in values.values()):
            raise PricingError(f"{where}: prices must be >= 0")
        names = [model, *(str(a).strip().lower() for a in entry.get("aliases", []) or [])]
        for name in names:
            out.append(
                ModelPrice(
                    provider=provider,
                    model=name,
                    input=values["input"],  # type: ignore[arg-type]
                    output=values["output"],  # type: ignore[arg-type]
                    cached_input=values["cached_input"],
                    reasoning=values["reasoning"],
                )
            )
    return out


class PricingTable:
    """Price lookup by (provider, model) with normalised model names; lookups are memoised."""

    _CACHE_LIMIT = 10_000

    def __init__(self, entries: list[ModelPrice], version: str) -> None:
        self.version = version
        self._by_key: dict[tuple[str, str], ModelPrice] = {}
        by_model: dict[str, list[ModelPrice]] = {}
        for e in entries:  # later entries (the user's file) override earlier ones
            self._by_key[(e.provider, e.model)] = e
        for e in self._by_key.values():
            by_model.setdefault(e.model, []).append(e)
        # a model name alone decides the price only when every provider listing it agrees
        self._by_model = {
            m: es[0] for m, es in by_model.items() if len({(x.input, x.output) for x in es}) == 1
        }
        self._cache: dict[tuple[str, str], ModelPrice | None] = {}

    @classmethod
    def load(cls, user_file: Path | None = None) -> PricingTable:
        text = (resources.files("spanline.spans") / "pricing" / BUNDLED_FILE).read_text(encoding="utf-8")
        bundled = json.loads(text)
        entries = _parse_entries(bundled, BUNDLED_FILE)
        version = str(bundled.get("version", "v1"))
        if user_file is not None:
            try:
                raw = Path(user_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise PricingError(f"cannot read pricing file {user_file}: {exc.strerror}") from None
            try:
                data = yaml.safe_load(raw)  # YAML is a superset of JSON
            except yaml.YAMLError:
                raise PricingError(f"pricing file {user_file} is neither JSON nor YAML") from None
            entries += _parse_entries(data, str(user_file))
            digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:8]
            version = f"{version}+{data.get('version', 'user')}:{digest}"
        return cls(entries, version)

    def lookup(self, provider: str, model: str) -> ModelPrice | None:
        key = (provider, model)
        if key in self._cache:
            return self._cache[key]
        found = self._lookup(canonical_provider(provider), model)
        if len(self._cache) >= self._CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = found
        return found

    def _lookup(self, provider: str, model: str) -> ModelPrice | None:
        if not model:
            return None
        candidates = model_candidates(model)
        for name in candidates:
            hit = self._by_key.get((provider, name))
            if hit is not None:
                return hit
        # resellers (Azure, Bedrock, Vertex, OpenRouter) or no provider: the model name decides
        for name in candidates:
            hit = self._by_model.get(name)
            if hit is not None:
                return hit
        return None

    def cost(
        self,
        provider: str,
        model: str,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_input_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> float | None:
        """USD cost, or None when there is nothing to price or no price (the latter is counted)."""
        if input_tokens is None and output_tokens is None:
            return None
        price = self.lookup(provider, model)
        if price is None:
            COST_UNKNOWN_MODEL.labels(provider=metric_provider(provider)).inc()
            return None
        return price.cost(input_tokens, output_tokens, cached_input_tokens, reasoning_tokens)
