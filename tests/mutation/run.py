"""Apply each curated mutant to a scratch copy of the repository and run the tests that
claim to catch it. A mutant nobody kills, or whose original text is no longer in its
file, fails the check (see README.md in this folder for the list's format).

The scratch copy holds services/, tests/, charts/, pyproject.toml and setup.py (the compiled
span builder's .so travels inside services/). pytest runs there with PYTHONPATH naming
the copy first, so the editable install's path (appended by a .pth file) cannot shadow
it; every run first proves `spanline` and `tests` were imported from the copy.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIST = Path(__file__).with_name("mutants.toml")
COPIED = ("services", "tests", "charts", "pyproject.toml", "setup.py")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache", "*.egg-info")
# "FAILED <node id> - <message>" (a node id's parameters may hold spaces); captured log
# lines ("ERROR    module:file.py:1 ...") are not test ids
_FAILED_RE = re.compile(r"^(?:FAILED|ERROR) (tests/.+?)(?: - |$)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Mutant:
    id: str
    file: str
    original: str
    replacement: str
    breaks: str
    tests: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Result:
    mutant: Mutant
    verdict: str  # killed | survived | error
    detail: str
    seconds: float


class ListError(Exception):
    """The mutant list itself is wrong: a field missing, an original not found exactly once."""


def load(path: Path = LIST) -> list[Mutant]:
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    mutants: list[Mutant] = []
    seen: set[str] = set()
    for i, entry in enumerate(doc.get("mutant", [])):
        missing = [k for k in ("id", "file", "original", "replacement", "breaks", "tests") if k not in entry]
        if missing:
            raise ListError(f"entry {i} ({entry.get('id', '?')}): missing {missing}")
        if entry["id"] in seen:
            raise ListError(f"duplicate id {entry['id']}")
        seen.add(entry["id"])
        if not entry["tests"]:
            raise ListError(f"{entry['id']}: no tests claim it")
        mutants.append(
            Mutant(
                entry["id"],
                entry["file"],
                entry["original"],
                entry["replacement"],
                entry["breaks"],
                tuple(entry["tests"]),
            )
        )
    return mutants


def check_originals(mutants: list[Mutant], root: Path = REPO) -> list[str]:
    """One problem line per mutant whose original text is not in its file exactly once."""
    problems = []
    for m in mutants:
        path = root / m.file
        if not path.is_file():
            problems.append(f"{m.id}: file {m.file} does not exist")
            continue
        n = path.read_text(encoding="utf-8").count(m.original)
        if n != 1:
            what = "not found" if n == 0 else f"found {n} times (make it unique)"
            problems.append(f"{m.id}: original text {what} in {m.file}")
        if m.original == m.replacement:
            problems.append(f"{m.id}: replacement equals the original")
    return problems


def make_copy(dest: Path) -> None:
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=_IGNORE)
        elif src.exists():
            shutil.copy2(src, dest / name)
    if not list((dest / "services" / "spanline" / "spans").glob("wire_spans*.so")):
        raise ListError("the compiled span builder (.so) is missing: build it first (make venv)")


def env_for(copy: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": f"{copy / 'services'}{os.pathsep}{copy}"}
    env.pop("PYTEST_ADDOPTS", None)
    return env


def prove_isolation(copy: Path) -> None:
    """`spanline` and `tests` must come from the copy, or a mutant would test the real tree."""
    code = "import spanline, tests; print(spanline.__file__); print(tests.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=copy, env=env_for(copy), capture_output=True, text=True, check=True
    ).stdout.split()
    for f in out:
        if not Path(f).resolve().is_relative_to(copy.resolve()):
            raise ListError(f"scratch copy is shadowed: {f} imported from outside {copy}")


def run_one(m: Mutant, timeout_s: float) -> Result:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"mutant-{m.id}-") as tmp:
        copy = Path(tmp)
        make_copy(copy)
        prove_isolation(copy)
        target = copy / m.file
        text = target.read_text(encoding="utf-8")
        if text.count(m.original) != 1:
            return Result(m, "error", "original text not found exactly once", 0.0)
        target.write_text(text.replace(m.original, m.replacement), encoding="utf-8")
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-x",
            "-q",
            "-rfE",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(copy),
            "-c",
            str(copy / "pyproject.toml"),
            *m.tests,
        ]
        try:
            proc = subprocess.run(
                cmd, cwd=copy, env=env_for(copy), capture_output=True, text=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired:
            return Result(m, "killed", f"timeout after {timeout_s:.0f}s", time.monotonic() - started)
    elapsed = time.monotonic() - started
    out = proc.stdout + proc.stderr
    if proc.returncode == 0:
        return Result(m, "survived", "all claimed tests passed", elapsed)
    if proc.returncode == 1:
        killers = _FAILED_RE.findall(out)
        return Result(m, "killed", ", ".join(killers) or "a claimed test failed", elapsed)
    # 2: collection error or interrupted, 4: a node id does not exist, 5: nothing collected
    tail = "\n".join(out.strip().splitlines()[-15:])
    return Result(m, "error", f"pytest exit {proc.returncode}:\n{tail}", elapsed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__)
    ap.add_argument("--only", default="", help="comma-separated mutant ids")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="mutants run at once (at most 2 here)")
    ap.add_argument("--timeout", type=float, default=420.0, help="seconds per mutant")
    ap.add_argument("--check", action="store_true", help="only check that every original is present")
    ap.add_argument("--list", type=Path, default=LIST, help="the mutant list (default: mutants.toml here)")
    args = ap.parse_args(argv)

    try:
        mutants = load(args.list)
    except ListError as exc:
        print(f"mutant list: {exc}")
        return 2
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {m.id for m in mutants}
        if unknown:
            print(f"unknown mutant ids: {sorted(unknown)}")
            return 2
        mutants = [m for m in mutants if m.id in wanted]
    problems = check_originals(mutants)
    for p in problems:
        print(f"ROTTEN   {p}")
    if problems:
        return 1
    print(f"{len(mutants)} mutants, every original present")
    if args.check:
        return 0

    started = time.monotonic()
    results: list[Result] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(args.jobs, 2))) as pool:
        futures = [pool.submit(run_one, m, args.timeout) for m in mutants]
        for fut in concurrent.futures.as_completed(futures):
            r = fut.result()
            results.append(r)
            print(f"{r.verdict.upper():8} {r.mutant.id} ({r.seconds:.0f}s): {r.detail}", flush=True)
            if r.verdict != "killed":
                print(f"         breaks: {r.mutant.breaks}\n         claimed by: {list(r.mutant.tests)}")
    bad = [r for r in results if r.verdict != "killed"]
    print(
        f"{len(results) - len(bad)}/{len(results)} mutants killed in {time.monotonic() - started:.0f}s"
        + (f"; NOT killed: {[r.mutant.id for r in bad]}" if bad else "")
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
