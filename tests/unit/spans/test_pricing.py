from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from spanline.spans.pricing import PricingError, PricingTable, metric_provider, model_candidates


def _unknown(provider: str) -> float:
    return REGISTRY.get_sample_value("spanline_spans_cost_unknown_model_total", {"provider": provider}) or 0.0


@pytest.fixture(scope="module")
def table() -> PricingTable:
    return PricingTable.load()


def test_bundled_table_has_version_and_major_providers(table: PricingTable) -> None:
    assert table.version == "v1"
    for provider, model in [
        ("openai", "gpt-4o"),
        ("anthropic", "claude-sonnet-4-5"),
        ("google", "gemini-2.5-pro"),
        ("mistral", "mistral-large"),
    ]:
        assert table.lookup(provider, model) is not None, (provider, model)


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai", "gpt-4-0613", "gpt-4"),
        ("anthropic", "claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic", "claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("mistral_ai", "mistral-large-2411", "mistral-large"),
        ("gcp.gemini", "models/gemini-2.0-flash", "gemini-2.0-flash"),
        ("aws.bedrock", "anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku"),
        ("gcp.vertex_ai", "claude-3-opus@20240229", "claude-3-opus"),
        ("azure.ai.openai", "gpt-4o", "gpt-4o"),
        ("", "gpt-4.1-mini", "gpt-4.1-mini"),
    ],
)
def test_model_normalization(table: PricingTable, provider: str, model: str, expected: str) -> None:
    price = table.lookup(provider, model)
    assert price is not None and price.model == expected


def test_exact_entry_beats_normalized(table: PricingTable) -> None:
    # gpt-4o-mini must not collapse to gpt-4o: candidates only strip dates
    assert model_candidates("gpt-4o-mini")[0] == "gpt-4o-mini"
    assert table.lookup("openai", "gpt-4o-mini").model == "gpt-4o-mini"  # type: ignore[union-attr]


def test_cost_formula_splits_cached_and_reasoning(table: PricingTable) -> None:
    # gpt-4o: input 2.50, cached 1.25, output 10.00 per 1M
    cost = table.cost(
        "openai", "gpt-4o", 1_000_000, 1_000_000, cached_input_tokens=400_000, reasoning_tokens=0
    )
    assert cost == pytest.approx(0.6 * 2.5 + 0.4 * 1.25 + 10.0)
    # reasoning without its own price is billed as output
    cost = table.cost("openai", "o3", 0, 1_000_000, reasoning_tokens=500_000)
    assert cost == pytest.approx(8.0)
    # cached cannot exceed input
    assert table.cost("openai", "gpt-4o", 10, 0, cached_input_tokens=50) == pytest.approx(10 * 1.25 / 1e6)


def test_unknown_model_is_null_and_counted(table: PricingTable) -> None:
    before = _unknown("openai")
    assert table.cost("openai", "gpt-99-ultra", 100, 100) is None
    assert _unknown("openai") == before + 1
    weird_before = _unknown("other")
    assert table.cost("some-new-vendor-123", "m", 1, 1) is None
    assert _unknown("other") == weird_before + 1
    # no tokens: nothing to price, nothing counted
    before = _unknown("openai")
    assert table.cost("openai", "gpt-99-ultra", None, None) is None
    assert _unknown("openai") == before


def test_preview_names_are_not_guessed(table: PricingTable) -> None:
    assert table.lookup("openai", "gpt-4o-realtime-preview") is None


def test_user_file_extends_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "version: acme-3\nmodels:\n"
        "  - {provider: openai, model: gpt-4o, input: 1.0, output: 2.0}\n"
        "  - {provider: acme, model: acme-large, input: 4, output: 8, cached_input: 1, aliases: [acme-l]}\n",
        encoding="utf-8",
    )
    table = PricingTable.load(path)
    assert table.version.startswith("v1+acme-3:")
    assert table.cost("openai", "gpt-4o-2024-08-06", 1_000_000, 0) == pytest.approx(1.0)
    assert table.cost("acme", "acme-l", 1_000_000, 1_000_000, cached_input_tokens=1_000_000) == pytest.approx(
        9.0
    )


def test_bad_user_file_names_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps({"models": [{"provider": "x", "model": "y", "input": "cheap"}]}), encoding="utf-8"
    )
    with pytest.raises(PricingError, match=r"models\[0\]"):
        PricingTable.load(path)


def test_metric_provider_is_bounded() -> None:
    assert metric_provider("gcp.vertex_ai") == "google"
    assert metric_provider("") == "none"
    assert metric_provider("x" * 500) == "other"
