"""Judge settings from env names, and evaluator files refused at start-up with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from spanline.scorer.judging.config import JudgeSettings
from spanline.scorer.judging.evaluators import EvaluatorError, load_evaluators
from spanline.scorer.judging.stage import JudgeStage
from spanline.settings import ConfigError, load_settings, masked_dump


def test_issue_env_names_reach_the_nested_judge_section(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("scorer:\n  judge:\n    model: from-yaml\n    sample_rate: 0.2\n")
    monkeypatch.setenv("SPANLINE_SCORER_JUDGE_ENABLED", "true")
    monkeypatch.setenv("SPANLINE_SCORER_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SPANLINE_SCORER_JUDGE_MODEL", "from-env")
    monkeypatch.setenv("SPANLINE_SCORER_JUDGE_API_KEY", "sk-secret-value")
    monkeypatch.setenv("SPANLINE_SCORER_JUDGE_ROUTE_LATENCY_MS", '{"support.chat": 8000}')
    j = load_settings(cfg).scorer.judge
    assert (j.enabled, j.base_url, j.model) == (True, "http://127.0.0.1:9/v1", "from-env")  # env over YAML
    assert j.sample_rate == 0.2  # YAML keys the env does not set survive
    assert j.api_key is not None and j.api_key.get_secret_value() == "sk-secret-value"
    assert j.route_latency_ms == {"support.chat": 8000.0}
    assert "sk-secret-value" not in str(masked_dump(load_settings(cfg)))


def test_enabled_without_endpoint_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLINE_SCORER_JUDGE_ENABLED", "true")
    with pytest.raises(ConfigError, match="judge enabled without base_url and model"):
        load_settings()


def test_unknown_judge_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLINE_SCORER_JUDGE_SAMPLE_RATE", "2")
    with pytest.raises(ConfigError, match=r"scorer\.judge\.sample_rate"):
        load_settings()


def test_shipped_evaluators_load() -> None:
    evs = load_evaluators()
    assert [e.name for e in evs] == ["answers_question", "unsupported_claims"]
    assert all(e.output == "pass_fail" and e.version for e in evs)


BAD = {
    "evaluators[0].rubric": (
        "evaluators:\n  - name: a\n    version: '1'\n    failure_mode: xyz\n    inputs: [output]\n"
    ),
    "evaluators[0].inputs[1]": (
        "evaluators:\n  - name: a\n    version: '1'\n    failure_mode: xyz\n"
        "    rubric: answer fail when bad\n    inputs: [output, whole_trace]\n"
    ),
    "evaluators[0].scale": (
        "evaluators:\n  - name: a\n    version: '1'\n    failure_mode: xyz\n"
        "    rubric: answer fail when bad\n    inputs: [output]\n    scale: 1-5\n"
    ),
    "evaluators[0].output": (
        "evaluators:\n  - name: a\n    version: '1'\n    failure_mode: xyz\n"
        "    rubric: answer fail when bad\n    inputs: [output]\n    output: likert\n"
    ),
}


@pytest.mark.parametrize("key", sorted(BAD))
def test_bad_evaluator_yaml_is_refused_naming_the_key(key: str, tmp_path: Path) -> None:
    path = tmp_path / "ev.yaml"
    path.write_text(BAD[key])
    with pytest.raises(EvaluatorError) as err:
        load_evaluators(path)
    assert key in str(err.value) and "(evaluator 'a')" in str(err.value)
    # and the stage refuses to start with it
    settings = JudgeSettings(enabled=True, base_url="http://127.0.0.1:9/v1", model="m", evaluators_file=path)
    with pytest.raises(EvaluatorError, match=key.replace("[", r"\[").replace("]", r"\]")):
        JudgeStage(settings)


def test_broken_yaml_and_duplicates_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ev.yaml"
    path.write_text("evaluators: [\n")
    with pytest.raises(EvaluatorError, match="not valid YAML at line"):
        load_evaluators(path)
    one = (
        "  - name: a\n    version: '1'\n    failure_mode: xyz\n"
        "    rubric: answer fail when bad\n    inputs: [output]\n"
    )
    path.write_text("evaluators:\n" + one + one)
    with pytest.raises(EvaluatorError, match="evaluator names repeated: a"):
        load_evaluators(path)
