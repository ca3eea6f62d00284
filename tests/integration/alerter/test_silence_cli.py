"""`spanline alerts silence | silences | expire` against the real broker (the compacted silences topic)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from spanline.alerter.topics_io import read_silences
from spanline.cli.main import main
from tests.conftest import settings_env
from tests.integration.alerter.conftest import make_topics

pytestmark = pytest.mark.integration


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["alerts", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_silence_list_expire(
    alerter_settings: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = alerter_settings()
    asyncio.run(make_topics(settings))
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)

    code, out, err = _cli(capsys, "silence", "--match", "projec t=shop", "--for", "2h")
    assert code == 2 and "name=value" in err  # a bad matcher is refused before anything is stored

    code, out, _ = _cli(
        capsys, "silence", "--match", "project=shop", "--match", "alertname=~err.*", "--for", "2h",
        "--comment", "deploy window", "--by", "ops",
    )  # fmt: skip
    assert code == 0
    sid = out.strip()
    assert sid

    code, out, _ = _cli(capsys, "silences")
    assert code == 0
    line = next(ln for ln in out.splitlines() if ln.startswith(sid))
    assert "active" in line and "project=shop" in line and "alertname=~err.*" in line
    assert "by=ops" in line and "deploy window" in line

    stored = asyncio.run(read_silences(settings))  # durable: what every alerter instance reads
    assert stored.mutes({"project": "shop", "alertname": "err"}, time.time())

    code, out, _ = _cli(capsys, "expire", sid)
    assert code == 0 and sid in out
    code, out, _ = _cli(capsys, "silences")
    assert code == 0 and sid not in out
    stored = asyncio.run(read_silences(settings))
    assert not stored.mutes({"project": "shop", "alertname": "err"}, time.time())

    code, _, err = _cli(capsys, "expire", "no-such-id")
    assert code == 1 and "no silence" in err
