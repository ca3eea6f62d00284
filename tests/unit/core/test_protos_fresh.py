"""The committed generated code must match protos/ (run `make protos` after editing a .proto)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_generated_code_is_current(tmp_path: Path) -> None:
    protos = sorted((ROOT / "protos" / "spanline" / "v1").glob("*.proto"))
    assert protos
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'protos'}",
            f"--python_out={tmp_path}",
            f"--mypy_out={tmp_path}",
            *map(str, protos),
        ],
        check=True,
        env=env,
    )
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert generated
    for rel in generated:
        committed = ROOT / "services" / rel
        assert committed.exists(), f"{rel} is not committed: run `make protos`"
        assert committed.read_bytes() == (tmp_path / rel).read_bytes(), f"{rel} is stale: run `make protos`"
