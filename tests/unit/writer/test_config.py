from __future__ import annotations

import json
from pathlib import Path

import pytest

from spanline.settings import ConfigError, load_settings, masked_dump
from spanline.writer.config import chdb_path, redact_dsn, resolve_dsn, resolve_object_store_url


def test_default_dsn_is_embedded_under_data_dir(tmp_path: Path) -> None:
    s = load_settings(None, data_dir=str(tmp_path / "d"))
    assert resolve_dsn(s) == f"chdb://{(tmp_path / 'd' / 'clickhouse').resolve()}"
    assert chdb_path(resolve_dsn(s)) == (tmp_path / "d" / "clickhouse").resolve()
    assert resolve_object_store_url(s) == str((tmp_path / "d" / "objects").resolve())


def test_env_dsn_password_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLINE_WRITER_CLICKHOUSE_DSN", "https://writer:s3cr3t@ch.example:8443/spanline")
    s = load_settings(None)
    assert "s3cr3t" not in str(masked_dump(s)) and "s3cr3t" not in repr(s)
    assert resolve_dsn(s) == "https://writer:s3cr3t@ch.example:8443/spanline"
    assert redact_dsn(resolve_dsn(s)) == "https://writer:********@ch.example:8443/spanline"
    assert chdb_path(resolve_dsn(s)) is None


def test_separate_password_is_folded_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLINE_WRITER_CLICKHOUSE_DSN", "http://writer@ch:8123")
    monkeypatch.setenv("SPANLINE_WRITER_CLICKHOUSE_PASSWORD", "p@ss/word")
    assert resolve_dsn(load_settings(None)) == "http://writer:p%40ss%2Fword@ch:8123"


def test_bad_dsn_scheme_rejected_without_echoing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLINE_WRITER_CLICKHOUSE_DSN", "mysql://u:hunter2@h/db")
    with pytest.raises(ConfigError) as err:
        load_settings(None)
    assert "writer.clickhouse_dsn" in str(err.value) and "hunter2" not in str(err.value)


def test_object_store_url_forms(tmp_path: Path) -> None:
    assert (
        resolve_object_store_url(load_settings(None, writer={"object_store_url": "s3://b/p"})) == "s3://b/p"
    )
    url = f"file://{tmp_path}/objs"
    assert resolve_object_store_url(load_settings(None, writer={"object_store_url": url})) == str(
        tmp_path / "objs"
    )
    with pytest.raises(ConfigError):
        load_settings(None, writer={"object_store_url": "gs://x"})


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        (
            "https://writer:s3cr3t@ch.example:8443/spanline",
            "https://writer:********@ch.example:8443/spanline",
        ),
        ("http://ch.example:8123/spanline", "http://ch.example:8123/spanline"),
        ("http://ch.example:8123/?password=s3cr3t", "********"),
    ],
)
def test_config_show_masks_only_the_dsn_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], dsn: str, shown: str
) -> None:
    from spanline.cli.main import main

    monkeypatch.setenv("SPANLINE_WRITER_CLICKHOUSE_DSN", dsn)
    assert main(["config", "show", "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["writer"]["clickhouse_dsn"] == shown
    assert "s3cr3t" not in out
