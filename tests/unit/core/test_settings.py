from __future__ import annotations

from pathlib import Path

import pytest

from spanline.cli.main import main
from spanline.ingest.config import hash_api_key
from spanline.settings import ConfigError, load_settings, masked_dump


def test_env_uses_section_underscore_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLINE_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("SPANLINE_KAFKA_SESSION_TIMEOUT_MS", "4000")
    monkeypatch.setenv("SPANLINE_INGEST_PORT", "5317")
    s = load_settings()
    assert s.kafka.bootstrap == "kafka:9092"
    assert s.kafka.session_timeout_ms == 4000
    assert s.ingest.port == 5317


def test_yaml_file_and_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kafka:\n  bootstrap: from-yaml:1\n  compression: gzip\ntopics:\n  prefix: acme\n")
    monkeypatch.setenv("SPANLINE_KAFKA_BOOTSTRAP", "from-env:2")
    s = load_settings(cfg)
    assert s.kafka.bootstrap == "from-env:2"
    assert s.kafka.compression == "gzip"
    assert s.topics.raw == "acme.raw"


def test_bad_values_name_the_key_and_allowed_values(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kafka:\n  compression: brotli\n  bogus: 1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    text = str(err.value)
    assert "kafka.compression" in text and "'zstd'" in text
    assert "kafka.bogus: unknown key" in text


@pytest.mark.parametrize(
    ("content", "needle"),
    [("kafka: [unclosed", "not valid YAML at line"), ("- a\n- b\n", "mapping at the top level")],
)
def test_broken_yaml(tmp_path: Path, content: str, needle: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(content)
    with pytest.raises(ConfigError, match=needle):
        load_settings(cfg)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings("/nonexistent/spanline.yaml")


def test_clear_text_api_keys_refused_and_secret_not_echoed(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ingest:\n  api_keys:\n    sk-live-very-secret: acme\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert "clear-text keys are refused" in str(err.value)
    assert "sk-live-very-secret" not in str(err.value)


def test_masked_dump_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLINE_KAFKA_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("SPANLINE_SECURITY_RAW_ENCRYPTION_KEY", "A" * 43 + "=")
    dumped = str(masked_dump(load_settings()))
    assert "hunter2" not in dumped and "AAAA" not in dumped
    assert "********" in dumped


def test_config_show_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLINE_KAFKA_SASL_PASSWORD", "hunter2")
    assert main(["config", "show", "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert '"bootstrap"' in out and "hunter2" not in out


def test_cli_config_error_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("log:\n  level: loud\n")
    assert main(["config", "show", "--config", str(cfg)]) == 2
    assert "log.level" in capsys.readouterr().err


def test_hash_key_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash-key", "abc"]) == 0
    assert capsys.readouterr().out.strip() == hash_api_key("abc")


def test_bad_encryption_key_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLINE_SECURITY_RAW_ENCRYPTION_KEY", "c2hvcnQ=")
    with pytest.raises(ConfigError, match="32 bytes"):
        load_settings()


def test_configuration_doc_is_current() -> None:
    from spanline.config_reference import render

    doc = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"
    assert doc.read_text() == render(), "docs/configuration.md is stale: run `spanline config reference`"
