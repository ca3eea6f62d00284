"""Unknown settings keys are refused, with the allowed keys and a did-you-mean."""

from __future__ import annotations

from pathlib import Path

import pytest

from spanline.cli.main import build_parser, main
from spanline.settings import NOT_SETTINGS_ENV, ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("SPANLINE_"):
            monkeypatch.delenv(name)


def test_a_typo_in_a_section_name_is_refused_with_a_did_you_mean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLINE_INJEST_PORT", "4444")
    with pytest.raises(ConfigError) as err:
        load_settings()
    text = str(err.value)
    assert "unknown environment variable SPANLINE_INJEST_PORT (did you mean SPANLINE_INGEST_PORT?)" in text
    assert "SPANLINE_DATA_DIR" in text and "INGEST" in text and "WRITER" in text


def test_a_typo_in_a_key_lists_the_keys_of_its_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLINE_WRITER_QUERY_PROT", "1")
    with pytest.raises(ConfigError) as err:
        load_settings()
    text = str(err.value)
    assert "(did you mean SPANLINE_WRITER_QUERY_PORT?)" in text
    assert "section writer allows SPANLINE_WRITER_ + one of:" in text and "QUERY_MAX_ROWS" in text


def test_every_setting_and_whitelisted_variable_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Derived from the model: a section another helper adds is allowed without a list to edit."""
    monkeypatch.setenv("SPANLINE_INGEST_PORT", "4444")
    monkeypatch.setenv("spanline_data_dir", "/tmp/x")  # environment names are case-insensitive
    for name in NOT_SETTINGS_ENV - {"SPANLINE_CONFIG"}:
        monkeypatch.setenv(name, "1")
    settings = load_settings()
    assert settings.ingest.port == 4444


def test_unknown_yaml_keys_name_the_allowed_keys(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("ingest:\n  prot: 4\nwritter: {}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(config)
    text = str(err.value)
    assert "ingest.prot: unknown key (did you mean port?); allowed here: host, port," in text
    assert "writter: unknown key (did you mean writer?); allowed here: project, data_dir," in text


@pytest.mark.parametrize("before", [True, False])
def test_config_works_before_or_after_the_command(
    tmp_path: Path, before: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("project: from-yaml\n")
    argv = (
        ["--config", str(config), "config", "show"] if before else ["config", "show", "--config", str(config)]
    )
    assert main(argv) == 0
    assert "project: from-yaml" in capsys.readouterr().out


def test_the_commands_own_config_wins_over_the_one_before_it(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    args = build_parser().parse_args(["--config", str(first), "config", "show", "--config", str(second)])
    assert args.config == str(second)
