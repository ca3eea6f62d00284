"""The mutation runner refuses a broken list and reports a mutant nobody kills."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.mutation import run

_TARGET = "tests/unit/mutation/sample_target.py"
_CLAIM = "tests/unit/mutation/sample_claim.py"


def _entry(**over: object) -> str:
    fields = {
        "id": "sample",
        "file": _TARGET,
        "original": "VALUE = 1",
        "replacement": "VALUE = 2",
        "breaks": "the sample value changes",
        "tests": [f"{_CLAIM}::test_value_is_one"],
    }
    fields.update(over)
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in fields.items())  # JSON strings are TOML strings
    return "[[mutant]]\n" + body + "\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mutants.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_field_and_duplicate_id_are_list_errors(tmp_path: Path) -> None:
    broken = _entry().replace('breaks = "the sample value changes"\n', "")
    with pytest.raises(run.ListError, match="missing"):
        run.load(_write(tmp_path, broken))
    with pytest.raises(run.ListError, match="duplicate id sample"):
        run.load(_write(tmp_path, _entry() + _entry()))
    with pytest.raises(run.ListError, match="no tests"):
        run.load(_write(tmp_path, _entry(tests=[])))


def test_original_not_found_exactly_once_is_reported(tmp_path: Path) -> None:
    text = _entry(id="gone", original="VALUE = 3") + _entry(id="twice", original="\n")
    text += _entry(id="nofile", file="services/nope.py") + _entry(id="same", replacement="VALUE = 1")
    problems = run.check_originals(run.load(_write(tmp_path, text)))
    assert any(p.startswith("gone: original text not found") for p in problems)
    assert any(re.match(r"twice: original text found \d+ times", p) for p in problems)
    assert any(p.startswith("nofile: file services/nope.py does not exist") for p in problems)
    assert any(p.startswith("same: replacement equals") for p in problems)
    # the check fails the run before any mutant is applied
    assert run.main(["--list", str(_write(tmp_path, text)), "--check"]) == 1


def test_the_curated_list_is_well_formed() -> None:
    mutants = run.load()
    assert len(mutants) >= 12
    assert run.check_originals(mutants) == []


def test_a_killed_mutant_names_its_killer_and_a_survivor_fails_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    killed = run.load(_write(tmp_path, _entry()))[0]
    result = run.run_one(killed, timeout_s=120)
    assert result.verdict == "killed", result.detail
    assert f"{_CLAIM}::test_value_is_one" in result.detail

    survivor = _write(tmp_path, _entry(id="survivor", tests=[f"{_CLAIM}::test_value_is_an_int"]))
    assert run.main(["--list", str(survivor)]) == 1
    out = capsys.readouterr().out
    assert "SURVIVED survivor" in out
    assert "NOT killed: ['survivor']" in out
