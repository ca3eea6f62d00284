"""`make up` installs only pyproject's runtime dependencies, so every module the services
import at module level must come from one of them (or what they pull in), not from the
dev toolchain. google.rpc once arrived only through the dev OTLP exporters and ingest
crashed at import under a runtime-only install."""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import importlib.util
import sys
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[3]
SERVICES = ROOT / "services" / "spanline"


def _closure(roots: list[str]) -> set[str]:
    env = {**default_environment(), "extra": ""}
    seen: set[str] = set()
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(req.name) or []
        except md.PackageNotFoundError:
            continue
        todo.extend(Requirement(r) for r in requires)
        for extra in req.extras:  # e.g. pyiceberg[pyarrow]
            env_x = {**env, "extra": extra}
            for r in requires:
                parsed = Requirement(r)
                if (
                    parsed.marker is not None
                    and "extra" in str(parsed.marker)
                    and parsed.marker.evaluate(env_x)
                ):
                    todo.append(
                        Requirement(parsed.name + (f"[{','.join(parsed.extras)}]" if parsed.extras else ""))
                    )
    return seen


def _module_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:  # module level only: imports inside functions are optional features
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Try):  # try: import x / except ImportError: optional
            continue
    return names


@functools.cache
def _owner_index() -> dict[str, str]:
    owners: dict[str, str] = {}
    for dist in md.distributions():
        for file in dist.files or ():
            owners[str(dist.locate_file(file))] = canonicalize_name(dist.metadata["Name"])
    return owners


def unlisted_imports(dependencies: list[str]) -> dict[str, set[str]]:
    """Distributions imported at module level by the services but outside ``dependencies``."""
    allowed = _closure(dependencies)
    owners = _owner_index()
    stdlib = sys.stdlib_module_names
    missing: dict[str, set[str]] = {}
    for path in SERVICES.rglob("*.py"):
        for name in _module_level_imports(path):
            top = name.split(".")[0]
            if top in stdlib or top == "spanline" or top == "__future__":
                continue
            spec = importlib.util.find_spec(name)
            origin = spec.origin if spec is not None else None
            if origin is None or origin in ("built-in", "frozen"):
                continue
            owner = owners.get(origin)
            if owner is not None and owner not in allowed:
                missing.setdefault(owner, set()).add(f"{path.relative_to(ROOT)}: {name}")
    return missing


def _dependencies() -> list[str]:
    return list(
        tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    )


def test_module_level_imports_come_from_runtime_dependencies() -> None:
    missing = unlisted_imports(_dependencies())
    assert not missing, f"imported at module level but not a runtime dependency: {missing}"


def test_the_check_sees_a_dependency_that_only_dev_brings() -> None:
    without = [d for d in _dependencies() if not d.startswith("googleapis-common-protos")]
    assert "googleapis-common-protos" in unlisted_imports(without)
