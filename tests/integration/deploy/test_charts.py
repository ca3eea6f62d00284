"""The Helm charts, checked with the real tools: helm v4 lint and template (several values
files, Kubernetes versions, with and without the monitoring CRDs), kubernetes-validate on
every core object, the KEDA and prometheus-operator CRD models on every custom resource,
the values schemas, and assertions on the rendered manifests that no schema can express."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from spanline.components import SERVICES
from tests.integration.deploy.conftest import KUBE_VERSIONS, ROOT, HelmError, helm_template

Render = Callable[..., list[dict[str, Any]]]
CI_VALUES = ("default-values.yaml", "production-values.yaml", "below-floor-values.yaml")
SERVICE_NAMES = ("ingest", "redactor", "scorer", "writer", "coldtier", "alerter")
CRD_MODELS: dict[tuple[str, str], Any] = {}


def _crd_model(api_version: str, kind: str) -> Any:
    if not CRD_MODELS:
        from cloudcoil.models.keda.v1alpha1 import ScaledObject
        from cloudcoil.models.prometheus_operator.v1 import PrometheusRule, ServiceMonitor

        CRD_MODELS.update(
            {
                ("keda.sh/v1alpha1", "ScaledObject"): ScaledObject,
                ("monitoring.coreos.com/v1", "ServiceMonitor"): ServiceMonitor,
                ("monitoring.coreos.com/v1", "PrometheusRule"): PrometheusRule,
            }
        )
    model = CRD_MODELS.get((api_version, kind))
    if model is None:
        raise AssertionError(f"{kind} ({api_version}) is neither a core kind nor a known CRD")
    return model


def validate_object(doc: dict[str, Any], kube: str) -> None:
    """Core kinds against the Kubernetes schema (strict); custom resources against their CRD model."""
    try:
        kubernetes_validate.validate(doc, kube, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        _crd_model(doc["apiVersion"], doc["kind"]).model_validate(doc)


def test_generated_files_match_the_generator() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "charts" / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_lint_strict_with_subcharts(helm: Path, charts_dir: Path) -> None:
    proc = subprocess.run(
        [str(helm), "lint", "--strict", "--with-subcharts", str(charts_dir / "spanline")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout
    for (
        values
    ) in CI_VALUES:  # subcharts see umbrella values files as their own under lint, so the umbrella alone
        proc = subprocess.run(
            [
                str(helm),
                "lint",
                "--strict",
                str(charts_dir / "spanline"),
                "-f",
                str(charts_dir / "spanline" / "ci" / values),
            ],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, f"{values}: {proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
@pytest.mark.parametrize("values", CI_VALUES)
@pytest.mark.parametrize("monitoring", [False, True])
def test_every_rendered_object_is_valid(render: Render, values: str, kube: str, monitoring: bool) -> None:
    docs = render(values=(values,), kube=kube, monitoring=monitoring)
    assert docs
    for doc in docs:
        validate_object(doc, kube)
    kinds = {d["kind"] for d in docs}
    assert ("ServiceMonitor" in kinds) == monitoring
    assert ("PrometheusRule" in kinds) == (
        values != "below-floor-values.yaml" and (monitoring or "production" in values)
    )


def test_an_unknown_custom_kind_fails_validation() -> None:
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    with pytest.raises(AssertionError, match="neither a core kind nor a known CRD"):
        validate_object(doc, "1.33.0")
    bad = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {
            "scaleTargetRef": {"name": "x"},
            "triggers": [{"type": "kafka", "metadata": {"lagThreshold": 5}}],
        },
    }
    with pytest.raises(Exception, match="lagThreshold"):
        validate_object(bad, "1.33.0")


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.mark.parametrize("values", CI_VALUES)
def test_rendered_manifests_hang_together(render: Render, values: str) -> None:
    docs = render(values=(values,), monitoring=True)
    deployments = _by_kind(docs, "Deployment")
    scaled, hpas = _by_kind(docs, "ScaledObject"), _by_kind(docs, "HorizontalPodAutoscaler")
    services, pdbs = _by_kind(docs, "Service"), _by_kind(docs, "PodDisruptionBudget")
    monitors, configmaps = _by_kind(docs, "ServiceMonitor"), _by_kind(docs, "ConfigMap")
    tests = {
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == "Pod" and d["metadata"]["annotations"].get("helm.sh/hook") == "test"
    }
    assert deployments
    for name, dep in deployments.items():
        component = dep["metadata"]["labels"]["app.kubernetes.io/component"]
        owners = [n for n in (*scaled, *hpas) if n == name]
        assert len(owners) <= 1, f"{name}: more than one autoscaler"
        assert ("replicas" in dep["spec"]) == (not owners), f"{name}: replicas and an autoscaler disagree"
        if component == "ingest":
            assert name not in scaled, "ingest has no consumer group: CPU HPA only"
        container = dep["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["run", component]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        if component in SERVICES:  # a chart for a service not registered yet has nothing to match
            assert ports["metrics"] == SERVICES[component].http_port, (
                "chart port differs from the service's default"
            )
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        svc_ports = {p["name"] for p in services[name]["spec"]["ports"]}
        assert "metrics" in svc_ports
        if name in monitors:
            assert [e["port"] for e in monitors[name]["spec"]["endpoints"]] == ["metrics"]
            assert monitors[name]["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
        assert pdbs[name]["spec"]["maxUnavailable"] == 1
        assert f"{name}-test" in tests
        env = configmaps[name]["data"]
        assert int(env["SPANLINE_HTTP_PORT"]) == ports["metrics"]
        if name in scaled:
            spec = scaled[name]["spec"]
            partitions = int(env["SPANLINE_TOPICS_PARTITIONS"])
            assert spec["maxReplicaCount"] <= partitions
            for trig in spec["triggers"]:
                assert all(isinstance(v, str) for v in trig["metadata"].values())
                group = (
                    f"{env.get('SPANLINE_KAFKA_GROUP_PREFIX') or env['SPANLINE_TOPICS_PREFIX']}-{component}"
                )
                assert trig["metadata"]["consumerGroup"] == group
                assert trig["metadata"]["topic"].startswith(env["SPANLINE_TOPICS_PREFIX"] + ".")


@pytest.mark.parametrize("values", CI_VALUES)
def test_configmap_keys_are_real_settings(
    render: Render, values: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every key the chart puts in a service's environment loads in the settings model."""
    from spanline.settings import load_settings

    docs = render(values=(values,))
    jobs = [d for d in docs if d["kind"] == "Job"]
    envs = [d["data"] for d in docs if d["kind"] == "ConfigMap" and "dashboard" not in d["metadata"]["name"]]
    for job in jobs:
        env = job["spec"]["template"]["spec"]["containers"][0]["env"]
        envs.append({e["name"]: e.get("value", "from-secret") for e in env})
    assert envs
    for env in envs:
        with monkeypatch.context() as m:
            for key in list(__import__("os").environ):
                if key.startswith("SPANLINE_"):
                    m.delenv(key)
            for key, value in env.items():
                if key == "SPANLINE_WRITER_CLICKHOUSE_DSN" and value == "from-secret":
                    value = "http://user:pw@clickhouse:8123/"
                m.setenv(key, value)
            settings = load_settings()
        assert settings.retention.cold_days == int(env["SPANLINE_RETENTION_COLD_DAYS"])


def test_jobs_create_topics_and_migrate_before_the_writer(render: Render) -> None:
    jobs = _by_kind(render(values=("default-values.yaml",)), "Job")
    by_args = {tuple(j["spec"]["template"]["spec"]["containers"][0]["args"]): j for j in jobs.values()}
    assert set(by_args) == {("topics", "create"), ("migrate",)}
    for job in by_args.values():
        assert "pre-install" in job["metadata"]["annotations"]["helm.sh/hook"]
    weight = {k: int(v["metadata"]["annotations"]["helm.sh/hook-weight"]) for k, v in by_args.items()}
    assert weight[("topics", "create")] < weight[("migrate",)]


def test_prometheus_rule_and_dashboards_render(render: Render) -> None:
    docs = render(values=("default-values.yaml",), monitoring=True)
    rules = _by_kind(docs, "PrometheusRule")
    assert len(rules) == 1
    source = yaml.safe_load((ROOT / "charts" / "spanline" / "rules" / "spanline-rules.yaml").read_text())
    assert next(iter(rules.values()))["spec"]["groups"] == source["groups"]
    assert not _by_kind(render(values=("default-values.yaml",)), "PrometheusRule"), (
        "auto without the CRD renders none"
    )
    dashboards = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    assert len(dashboards) == len(list((ROOT / "charts" / "spanline" / "dashboards").glob("*.json")))


# ------------------------------------------------------------------ schema refusals


REFUSED = [
    ("global.retention.coldDays=90", "minimum: got 90, want 183"),
    ('global.retention={"coldDays": 90, "allowBelowFloor": true}', "reason"),
    ('global.retention={"coldDays": 90, "allowBelowFloor": true, "reason": ""}', "reason"),
    ('scorer.autoscaling.mode="vpa"', "value must be one of 'keda', 'hpa', 'none'"),
    ('ingest.autoscaling.mode="keda"', "ingest: autoscaling.mode=keda needs a Kafka input"),
    ("scorer.autoscaling.maxReplicas=12", "maxReplicas=12 is above global.topics.partitions=6"),
    ("writer.replicas=2", "additional properties 'replicas' not allowed"),
    ('global.kafka.bootstrap="kafka"', "/global/kafka/bootstrap"),
    (
        'alerter.config={"SPANLINE_ALERTER_RULES_FILE": "/r.yaml", "alerter.rules_file": "/r.yaml"}',
        "does not match pattern '^SPANLINE_",
    ),
]


@pytest.mark.parametrize(("setting", "message"), REFUSED)
def test_bad_values_are_refused_with_a_readable_message(
    helm: Path, charts_dir: Path, setting: str, message: str
) -> None:
    with pytest.raises(HelmError) as err:
        helm_template(helm, charts_dir, "spanline", (), (setting,), "1.33.0", False)
    assert message in str(err.value)


def test_retention_floor_on_the_coldtier_chart_alone(render: Render, helm: Path, charts_dir: Path) -> None:
    with pytest.raises(HelmError, match="minimum: got 90, want 183"):
        helm_template(helm, charts_dir, "coldtier", (), ("global.retention.coldDays=90",), "1.33.0", False)
    reason = "no EU users in this test cluster"
    override = f'global.retention={{"coldDays": 90, "allowBelowFloor": true, "reason": "{reason}"}}'
    docs = render(chart="coldtier", sets=(override,))
    env = _by_kind(docs, "ConfigMap")["rel-coldtier"]["data"]
    assert env["SPANLINE_RETENTION_COLD_DAYS"] == "90"
    assert env["SPANLINE_RETENTION_ALLOW_BELOW_FLOOR"] == "true"
    assert env["SPANLINE_RETENTION_BELOW_FLOOR_REASON"] == "no EU users in this test cluster"


def test_schemas_agree_with_jsonschema() -> None:
    """The same verdicts without helm: the schema is standard draft-07."""
    schema = json.loads(
        (ROOT / "charts" / "spanline" / "charts" / "coldtier" / "values.schema.json").read_text()
    )
    values = yaml.safe_load(
        (ROOT / "charts" / "spanline" / "charts" / "coldtier" / "values.yaml").read_text()
    )
    jsonschema.validate(values, schema)
    values["global"]["retention"]["coldDays"] = 90
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(values, schema)
    values["global"]["retention"].update(allowBelowFloor=True, reason="test cluster outside the EU AI Act")
    jsonschema.validate(values, schema)


def test_each_service_exists_in_the_package_and_has_a_chart() -> None:
    """Every registered service has a chart whose generator entry agrees with its spec
    (port, inputs); a chart for a service not registered yet is allowed only while that
    service's module does not exist (once it does, it must be registered)."""
    import importlib.util

    sys.path.insert(0, str(ROOT / "charts"))
    import generate

    charts = {p.name for p in (ROOT / "charts" / "spanline" / "charts").iterdir() if p.is_dir()}
    assert charts == set(SERVICE_NAMES)
    generated = {s.name: s for s in generate.SERVICES}
    assert set(generated) == charts
    for name, spec in SERVICES.items():
        assert name in charts, f"{name} is a registered service without a chart"
        assert generated[name].metrics_port == spec.http_port, f"{name}: chart port != ServiceSpec.http_port"
        assert set(generated[name].inputs) == set(spec.inputs or ()), (
            f"{name}: chart inputs != ServiceSpec.inputs"
        )
    for name in charts - set(SERVICES):
        assert importlib.util.find_spec(f"spanline.{name}.service") is None, (
            f"spanline.{name}.service exists but {name} is not registered in spanline.components.SERVICES"
        )
