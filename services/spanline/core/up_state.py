"""Where a running `spanline up` says what it serves, so other commands find it.

`spanline query` run from another directory resolves a different `data_dir` and would
find no data while the pipeline runs elsewhere. `up` writes a small state file (its pid,
data directory and query endpoint) under a per-user runtime directory; readers keep only
the files of live processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil


def runtime_dir() -> Path:
    """`$XDG_RUNTIME_DIR/spanline`, else a per-user directory under the temp dir."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and Path(base).is_dir():
        return Path(base) / "spanline"
    return Path(tempfile.gettempdir()) / f"spanline-{os.getuid()}"


@dataclass(frozen=True, slots=True)
class UpState:
    pid: int
    data_dir: str
    query_url: str
    started_at: float

    def alive(self) -> bool:
        try:
            return psutil.pid_exists(self.pid) and psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


def _path_for(pid: int, directory: Path | None = None) -> Path:
    return (directory or runtime_dir()) / f"up-{pid}.json"


def write_state(state: UpState, directory: Path | None = None) -> Path:
    folder = directory or runtime_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = _path_for(state.pid, folder)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(state)), encoding="utf-8")
    tmp.replace(path)
    return path


def remove_state(pid: int, directory: Path | None = None) -> None:
    with contextlib.suppress(FileNotFoundError):
        _path_for(pid, directory).unlink()


def running_ups(directory: Path | None = None) -> list[UpState]:
    """Live `spanline up` processes, newest first; stale files are skipped (and removed)."""
    folder = directory or runtime_dir()
    found: list[UpState] = []
    for path in sorted(folder.glob("up-*.json")) if folder.is_dir() else []:
        try:
            state = UpState(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue
        if state.alive():
            found.append(state)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    return sorted(found, key=lambda s: s.started_at, reverse=True)
