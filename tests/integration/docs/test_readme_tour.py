"""The README's tour, run as written against a running `spanline up`, so it cannot drift.

Every fenced ``sh`` block of the "A five-minute tour" section runs in order, each as one
`bash -e` script (so a block's variables carry between its lines). Output samples are
``text`` blocks and are not run. Only what a test has to change is changed: the pipeline
listens on free ports (the tour's ``127.0.0.1:4317`` becomes the test's ingest address)
and ``.venv/bin/spanline`` is this interpreter's `spanline`. The blocks run from an empty
directory with no SPANLINE_* settings, as a person in another terminal would: the query
commands must find the pipeline by themselves.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.up.upctl import Up, spanline, up_env

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[3] / "README.md"
_BLOCK = re.compile(r"^[ \t]*```sh\n(.*?)^[ \t]*```", re.S | re.M)


def tour_blocks(text: str) -> list[str]:
    """The sh blocks of the tour section, dedented."""
    start = text.index("## A five-minute tour")
    end = text.index("\n## ", start + 1)
    blocks = []
    for body in _BLOCK.findall(text[start:end]):
        lines = body.splitlines()
        indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
        blocks.append("\n".join(line[indent:] for line in lines))
    return blocks


def test_the_tour_has_blocks_to_run() -> None:
    blocks = tour_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 5
    assert any("loadgen" in b for b in blocks) and any("spanline trace" in b for b in blocks)


def _wait_stored(env: dict[str, str], spans: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        done = spanline("query", "SELECT count() FROM spans", "--format", "csv", env=env)
        seen = done.stdout.strip().splitlines()[-1] if done.returncode == 0 and done.stdout.strip() else seen
        if seen == str(spans):
            return
        time.sleep(1)
    raise AssertionError(f"{spans} spans never stored (last count {seen!r})")


def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    blocks = tour_blocks(README.read_text(encoding="utf-8"))
    env = up_env(tmp_path)
    person = {k: v for k, v in env.items() if not k.startswith("SPANLINE_")}  # another terminal
    cli = f"{shlex.quote(sys.executable)} -m spanline.cli.main"
    where = tmp_path / "elsewhere"
    where.mkdir()
    up = Up(env)
    try:
        up.wait_banner()
        outputs: list[subprocess.CompletedProcess[str]] = []
        for block in blocks:
            script = block.replace(".venv/bin/spanline", cli).replace("127.0.0.1:4317", up.ingest_target)
            done = subprocess.run(
                ["bash", "-e", "-c", script],
                env=person,
                cwd=where,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, f"README block failed:\n{block}\n{done.stdout}\n{done.stderr}"
            assert "Traceback" not in done.stderr, f"{block}\n{done.stderr}"
            outputs.append(done)
            if "loadgen" in block:
                sent = re.search(r"--spans (\d+)", block)
                assert sent is not None and re.search(rf"spans acked\s+{sent.group(1)}\b", done.stdout), (
                    done.stdout
                )
                _wait_stored(env, int(sent.group(1)))
        by_text = dict(zip(blocks, outputs, strict=True))
        for block, done in by_text.items():
            if "DISTINCT trace_id" in block:  # the ERROR traces, each once
                ids = [
                    line for line in done.stdout.splitlines() if re.fullmatch(r"[0-9a-f]{32}", line.strip())
                ]
                assert ids and len(ids) == len(set(ids)), done.stdout
            if "spanline trace" in block:
                assert done.stdout.startswith("trace ") and "ERROR" in done.stdout, done.stdout
            if "masked_emails" in block:
                masked, clear = done.stdout.splitlines()[2].split()
                assert int(masked) > 0 and int(clear) == 0, done.stdout
            if "spanline redact" in block:
                assert done.stdout.strip() == "mail <EMAIL>, card <CARD>, key <OPENAI_KEY>", done.stdout
        promised = re.search(r"prints `(mail <EMAIL>[^`]*)`", README.read_text(encoding="utf-8"))
        assert promised is not None
        assert any(o.stdout.strip() == promised.group(1) for o in outputs)
    finally:
        up.kill()
    assert os.path.isdir(env["SPANLINE_DATA_DIR"])  # the pipeline's data stayed where up put it
