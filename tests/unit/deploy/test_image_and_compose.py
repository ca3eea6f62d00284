"""The Dockerfile and the compose file, parsed (no Docker daemon runs on these machines):
the Dockerfile with the official Go parser (`dockerfile` package), the compose file with
the compose-spec parser, and both cross-checked against the code they package."""

from __future__ import annotations

import json
from pathlib import Path

import compose_spec
import dockerfile
import pytest
import yaml

from spanline.components import SERVICES

ROOT = Path(__file__).resolve().parents[3]


def _stages() -> list[list[dockerfile.Command]]:
    stages: list[list[dockerfile.Command]] = []
    for cmd in dockerfile.parse_file(str(ROOT / "Dockerfile")):
        if cmd.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(cmd)
    return stages


def test_dockerfile_builds_the_extension_then_runs_slim_and_non_root() -> None:
    stages = _stages()
    assert len(stages) == 2
    build, runtime = stages
    assert build[0].value[-1] == "build" and runtime[0].value[-1] == "runtime"
    build_runs = " ".join(" ".join(c.value) for c in build if c.cmd == "RUN")
    assert "gcc" in build_runs and "pip wheel" in build_runs
    assert "wire_spans" in build_runs, "the build must fail when the compiled span builder is missing"
    runtime_cmds = {c.cmd for c in runtime}
    assert "HEALTHCHECK" not in runtime_cmds, "Kubernetes probes check health, not the image"
    runtime_runs = " ".join(" ".join(c.value) for c in runtime if c.cmd == "RUN")
    assert "gcc" not in runtime_runs, "no compiler in the runtime image"
    assert any(c.cmd == "COPY" and "--from=build" in c.flags for c in runtime)
    user = [c for c in runtime if c.cmd == "USER"]
    assert user and user[-1].value[0].split(":")[0] not in ("0", "root")
    entry = [c for c in runtime if c.cmd == "ENTRYPOINT"]
    assert entry and json.loads(entry[-1].original.split(None, 1)[1]) == ["spanline"]
    exposed = {int(p) for c in runtime if c.cmd == "EXPOSE" for p in c.value}
    assert {spec.http_port for spec in SERVICES.values()} <= exposed
    assert {4317, 4318} <= exposed


def _compose() -> dict[str, object]:
    data = yaml.safe_load((ROOT / "docker-compose.dev.yml").read_text())  # resolves the YAML anchors
    compose_spec.PyCompose.from_json(json.dumps(data))  # the spec's own validation
    return data  # type: ignore[no-any-return]


def test_compose_file_parses_and_runs_every_service_from_the_image() -> None:
    data = _compose()
    services = data["services"]
    assert isinstance(services, dict)
    for name in SERVICES:
        svc = services[name]
        assert svc["command"] == ["run", name]
        assert svc["image"] == "spanline:dev"
        assert "healthcheck" in svc
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert svc["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert services["writer"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for engine in ("kafka", "clickhouse", "s3"):
        assert "healthcheck" in services[engine]
        assert ":" in services[engine]["image"] and not services[engine]["image"].endswith(":latest")
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"


def test_compose_settings_are_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from spanline.settings import load_settings

    for name, svc in _compose()["services"].items():  # type: ignore[union-attr]
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items() if k.startswith("SPANLINE_")}
        if not env:
            continue
        with monkeypatch.context() as m:
            for key in list(__import__("os").environ):
                if key.startswith("SPANLINE_"):
                    m.delenv(key)
            for key, value in env.items():
                m.setenv(key, value)
            load_settings()  # raises on an unknown key or a bad value
