"""`make up` for a new user: runtime dependencies only, a clear Python check, a broken venv
rebuilt. Runs make against a throw-away VENV; nothing is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_up_installs_runtime_only_and_test_the_dev_toolchain(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    up = _make("-n", "up", f"VENV={venv}").stdout
    assert "pip install --progress-bar on -e . " in up and "[dev]" not in up
    assert "pip install -q" not in up  # progress stays visible
    test = _make("-n", "test", f"VENV={venv}").stdout
    assert "-e '.[dev]'" in test


def test_wrong_python_is_named_before_anything_is_built(tmp_path: Path) -> None:
    fake = tmp_path / "python3.9"
    fake.write_text("#!/bin/sh\n[ \"$1\" = -V ] && echo 'Python 3.9.2' && exit 0\nexit 1\n")
    fake.chmod(0o755)
    done = _make("up", f"VENV={tmp_path / 'venv'}", f"PYTHON={fake}")
    assert done.returncode != 0
    assert (
        "needs Python 3.11" in done.stderr
        and "Python 3.9.2" in done.stderr
        and "PYTHON=python3.11" in done.stderr
    )
    assert not (tmp_path / "venv").exists()


def test_broken_venv_is_detected_and_rebuilt(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(tmp_path / "gone")  # the interpreter it was built with is gone
    stamp = _make("-n", "-p", f"VENV={venv}").stdout
    runtime = next(
        line.split(":=", 1)[1].strip() for line in stamp.splitlines() if line.startswith("RUNTIME :=")
    )
    Path(runtime).touch()  # a stamp from a run that "succeeded" with the now-broken venv
    fake = tmp_path / "python3.9"  # stops the rebuild right after the check, so nothing is installed
    fake.write_text("#!/bin/sh\n[ \"$1\" = -V ] && echo 'Python 3.9.2' && exit 0\nexit 1\n")
    fake.chmod(0o755)
    done = _make("up", f"VENV={venv}", f"PYTHON={fake}")
    assert "is broken or built with another Python; rebuilding it" in done.stdout
    assert not (venv / "bin" / "python").is_symlink()
    assert "needs Python 3.11" in done.stderr
