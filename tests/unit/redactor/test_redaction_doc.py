"""docs/redaction.md's sample policy is the file in examples/, and its `spanline redact`
example gives the output the page shows, with the environment variables the page names."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "redaction.md").read_text(encoding="utf-8")


def test_sample_policy_is_the_example_file() -> None:
    block = DOC.split("## Policy file", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert block == (ROOT / "examples" / "redaction-policy.yaml").read_text(encoding="utf-8")
    named = set(re.findall(r"pseudonym_secret_env: (\w+)", block))
    intro = DOC.split("## Policy file", 1)[1].split("```yaml", 1)[0]
    assert named and all(f"`{name}`" in intro for name in named)


def test_redact_example_prints_what_the_page_shows() -> None:
    example = DOC.split("## `spanline redact`", 1)[1].split("```\n", 2)[1]
    lines = example.splitlines()
    exports = dict(re.findall(r"(\w+)=(\S+)", lines[0].split("#", 1)[0].removeprefix("$ export ")))
    command = lines[1].removeprefix("$ ")
    text, args = re.fullmatch(r"printf '(.*)\\n' \| spanline redact (.*)", command).groups()  # type: ignore[union-attr]
    done = subprocess.run(
        [sys.executable, "-m", "spanline.cli.main", "redact", *args.split()],
        input=text + "\n",
        env={"PATH": "/usr/bin:/bin", **exports},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == lines[2]
    assert lines[3] in done.stderr
