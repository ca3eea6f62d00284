"""Writes every generated file of the Helm charts from this one source, or checks them.

    python charts/generate.py          # (re)write the service charts, schemas and READMEs
    python charts/generate.py --check  # exit 1 naming each file that differs (CI drift test)

Why generated: six service charts share one shape, and the values schemas must agree
with each other on the retention floor (a subchart installed alone must refuse
``coldDays`` below 183 as the umbrella does). Writing them by hand drifts; adding a
service here costs one ``Service`` line.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

CHARTS = Path(__file__).resolve().parent
UMBRELLA = CHARTS / "spanline"
VERSION = "0.1.0"
APP_VERSION = "0.1.0"
RETENTION_FLOOR_DAYS = 183  # EU AI Act Art. 19/26: logs kept at least six months


@dataclass(frozen=True)
class Port:
    name: str
    port: int


@dataclass(frozen=True)
class Service:
    name: str
    summary: str
    metrics_port: int
    inputs: tuple[str, ...] = ()
    ports: tuple[Port, ...] = ()
    config: dict[str, str] = field(default_factory=dict)
    cpu: str = "500m"
    memory: str = "512Mi"

    @property
    def autoscaling(self) -> str:
        # consumers scale on lag; ingest (no consumer group) on CPU
        return "keda" if self.inputs else "hpa"


SERVICES: tuple[Service, ...] = (
    Service(
        "ingest",
        "OTLP/gRPC and OTLP/HTTP receiver -> spanline.raw",
        9464,
        ports=(Port("otlp-grpc", 4317), Port("otlp-http", 4318)),
        config={"SPANLINE_INGEST_HOST": "0.0.0.0"},
        memory="384Mi",
    ),
    Service(
        "redactor", "spanline.raw -> spanline.redacted (PII and secrets masked, fail closed)", 9465, ("raw",)
    ),
    Service(
        "scorer",
        "spanline.redacted -> spanline.scores (deterministic scores, sampled judge)",
        9467,
        ("redacted",),
    ),
    Service(
        "writer",
        "redacted/scores/alerts/audit -> ClickHouse (hot tier)",
        9466,
        ("redacted", "scores", "alerts", "audit"),
        memory="768Mi",
    ),
    Service(
        "coldtier",
        "redacted/scores -> Iceberg (cold tier, >= 183 days)",
        9468,
        ("redacted", "scores"),
        memory="1Gi",
    ),
    Service(
        "alerter", "spanline.scores -> Slack / PagerDuty / spanline.alerts", 9469, ("scores",), memory="384Mi"
    ),
)


# ---------------------------------------------------------------------------- values.yaml


def _global_values(indent: str = "") -> str:
    i = indent
    return f"""{i}global:
{i}  image:
{i}    # -- container image of every spanline service (one image, `spanline run <service>`)
{i}    repository: ghcr.io/spanline/spanline
{i}    # -- image tag; empty means the chart's appVersion
{i}    tag: ""
{i}    # -- image pull policy
{i}    pullPolicy: IfNotPresent
{i}  kafka:
{i}    # -- host:port[,host:port] of the Kafka brokers (external to the chart)
{i}    bootstrap: kafka:9092
{i}    # -- consumer groups are '<groupPrefix or topics.prefix>-<service>'; change it to replay from the start
{i}    groupPrefix: ""
{i}  topics:
{i}    # -- topic names are '<prefix>.raw', '<prefix>.redacted', ...
{i}    prefix: spanline
{i}    # -- partitions per topic: the ceiling of every consumer service's replicas
{i}    partitions: 6
{i}    # -- replicas per partition
{i}    replicationFactor: 3
{i}  retention:
{i}    # -- ClickHouse TTL window (days)
{i}    hotDays: 30
{i}    # -- Iceberg retention (days); below {RETENTION_FLOOR_DAYS} only with allowBelowFloor and a reason
{i}    coldDays: {RETENTION_FLOOR_DAYS}
{i}    # -- allow coldDays below {RETENTION_FLOOR_DAYS} (only for deployments outside the EU AI Act's scope)
{i}    allowBelowFloor: false
{i}    # -- why the floor does not apply (required with allowBelowFloor, logged at every start)
{i}    reason: ""
{i}  monitoring:
{i}    # -- extra labels on ServiceMonitors and the PrometheusRule (e.g. the Prometheus operator's selector)
{i}    labels: {{}}
{i}  # -- SPANLINE_* settings for every service (see docs/configuration.md)
{i}  config:
{i}    SPANLINE_DATA_DIR: /tmp/spanline
{i}  # -- settings from existing Secrets for every service: name (SPANLINE_* variable), secretName, key
{i}  secretEnv: []
"""


def _service_values(s: Service, indent: str = "", with_global: bool = True) -> str:
    i = indent
    inputs = "[" + ", ".join(s.inputs) + "]"
    ports = "".join(f"\n{i}  - name: {p.name}\n{i}    port: {p.port}" for p in s.ports) or " []"
    ports_line = f"{i}ports:{ports}" if s.ports else f"{i}ports: []"
    config = "".join(f"\n{i}  {k}: {json.dumps(v)}" for k, v in s.config.items())
    config_line = f"{i}config:{config}" if s.config else f"{i}config: {{}}"
    text = f"""{i}# -- (fixed) the spanline service this chart runs
{i}component: {s.name}
{i}# -- (fixed) topic suffixes this service consumes; KEDA scales on their lag
{i}inputTopics: {inputs}
{i}# -- replicas when autoscaling.mode is none
{i}replicaCount: 1
{i}# -- port of /metrics, /healthz and /readyz (probes and the ServiceMonitor use it)
{i}metricsPort: {s.metrics_port}
{i}# -- service ports besides metrics
{ports_line}
{i}autoscaling:
{i}  # -- keda (consumer lag), hpa (CPU) or none; exactly one autoscaler owns the replicas
{i}  mode: {s.autoscaling}
{i}  # -- lower bound of replicas
{i}  minReplicas: 1
{i}  # -- upper bound of replicas (consumers: not above global.topics.partitions)
{i}  maxReplicas: {6 if s.inputs else 10}
{i}  keda:
{i}    # -- target consumer lag per replica (messages)
{i}    lagThreshold: 5000
{i}    # -- lag below which KEDA does not activate
{i}    activationLagThreshold: 100
{i}    # -- seconds between lag checks
{i}    pollingInterval: 15
{i}    # -- seconds before scaling back down
{i}    cooldownPeriod: 300
{i}  hpa:
{i}    # -- average CPU utilisation the HPA keeps
{i}    targetCPUUtilizationPercentage: 70
{i}pdb:
{i}  # -- a PodDisruptionBudget for voluntary evictions
{i}  enabled: true
{i}  # -- pods that may be down at once during a drain
{i}  maxUnavailable: 1
{i}# -- container resources
{i}resources:
{i}  requests:
{i}    cpu: 100m
{i}    memory: 256Mi
{i}  limits:
{i}    cpu: {s.cpu}
{i}    memory: {s.memory}
{i}# -- SPANLINE_* settings of this service (override global.config)
{config_line}
{i}# -- settings from existing Secrets: list of name (SPANLINE_* variable), secretName, key
{i}secretEnv: []
{i}serviceMonitor:
{i}  # -- true, false, or auto (when the cluster serves monitoring.coreos.com/v1)
{i}  enabled: auto
{i}  # -- scrape interval
{i}  interval: 30s
{i}# -- SIGTERM drain budget before the kubelet kills the pod
{i}terminationGracePeriodSeconds: 30
{i}# -- pod security context
{i}podSecurityContext:
{i}  runAsNonRoot: true
{i}  runAsUser: 10001
{i}  runAsGroup: 10001
{i}  fsGroup: 10001
{i}  seccompProfile:
{i}    type: RuntimeDefault
{i}# -- container security context
{i}securityContext:
{i}  allowPrivilegeEscalation: false
{i}  readOnlyRootFilesystem: true
{i}  capabilities:
{i}    drop: [ALL]
"""
    if with_global:
        text += _global_values(indent)
    return text


def umbrella_values() -> str:
    parts = [
        "# spanline: all six services, the PrometheusRule and the Grafana dashboards.",
        "# Generated by charts/generate.py; edit the generator, not this file.",
        _global_values(),
    ]
    for s in SERVICES:
        parts.append(f"{s.name}:\n  # -- install the {s.name} service ({s.summary})\n  enabled: true")
    parts.append(
        """jobs:
  # -- a pre-install/pre-upgrade Job that creates the topics (`spanline topics create`, idempotent)
  topics: true
  # -- a pre-install/pre-upgrade Job that applies ClickHouse migrations before the writer starts
  migrate: true
prometheusRule:
  # -- true, false, or auto (when the cluster serves monitoring.coreos.com/v1 PrometheusRule)
  enabled: auto
dashboards:
  # -- ConfigMaps holding the Grafana dashboards, picked up by the Grafana sidecar
  enabled: true
  # -- label the Grafana sidecar watches
  label: grafana_dashboard
  # -- value of that label
  labelValue: "1"
"""
    )
    return "\n".join(parts)


# ---------------------------------------------------------------------------- schemas


def _retention_schema() -> dict[str, object]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["coldDays"],
        "properties": {
            "hotDays": {"type": "integer", "minimum": 1},
            "coldDays": {"type": "integer", "minimum": 1},
            "allowBelowFloor": {"type": "boolean"},
            "reason": {"type": "string"},
        },
        # the floor: below 183 days only with an explicit override and a reason
        "if": {"properties": {"allowBelowFloor": {"const": True}}, "required": ["allowBelowFloor"]},
        "then": {
            "properties": {"reason": {"type": "string", "minLength": 10, "pattern": "\\S"}},
            "required": ["reason"],
        },
        "else": {"properties": {"coldDays": {"minimum": RETENTION_FLOOR_DAYS}}},
    }


_ENV_NAME = {"type": "string", "pattern": "^SPANLINE_[A-Z0-9_]+$"}


def _global_schema() -> dict[str, object]:
    secret_env = {
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "secretName", "key"],
            "properties": {
                "name": _ENV_NAME,
                "secretName": {"type": "string", "minLength": 1},
                "key": {"type": "string", "minLength": 1},
            },
        },
    }
    return {
        "type": "object",
        "additionalProperties": True,  # Helm passes its own globals through
        "properties": {
            "image": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "repository": {"type": "string", "minLength": 1},
                    "tag": {"type": "string"},
                    "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                },
            },
            "kafka": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "bootstrap": {"type": "string", "pattern": "^[^,:\\s]+:[0-9]+(,[^,:\\s]+:[0-9]+)*$"},
                    "groupPrefix": {"type": "string", "pattern": "^[A-Za-z0-9._-]*$"},
                },
            },
            "topics": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "prefix": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$"},
                    "partitions": {"type": "integer", "minimum": 1, "maximum": 10000},
                    "replicationFactor": {"type": "integer", "minimum": 1, "maximum": 7},
                },
            },
            "retention": _retention_schema(),
            "monitoring": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"labels": {"type": "object", "additionalProperties": {"type": "string"}}},
            },
            "config": {
                "type": "object",
                "propertyNames": _ENV_NAME,
                "additionalProperties": {"type": ["string", "number", "boolean"]},
            },
            "secretEnv": secret_env,
        },
    }


def service_schema() -> dict[str, object]:
    quantity = {"type": ["string", "number"]}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "spanline service chart values",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "spanline-lib": {"type": "object"},  # Helm adds a key per dependency, library charts included
            "global": _global_schema(),
            "enabled": {"type": "boolean"},
            "component": {"enum": [s.name for s in SERVICES]},
            "inputTopics": {
                "type": "array",
                "items": {"enum": ["raw", "redacted", "scores", "alerts", "audit"]},
            },
            "replicaCount": {"type": "integer", "minimum": 0},
            "metricsPort": {"type": "integer", "minimum": 1, "maximum": 65535},
            "ports": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name", "port"],
                    "properties": {
                        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$"},
                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                    },
                },
            },
            "autoscaling": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "mode": {"enum": ["keda", "hpa", "none"]},
                    "minReplicas": {"type": "integer", "minimum": 1},
                    "maxReplicas": {"type": "integer", "minimum": 1},
                    "keda": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "lagThreshold": {"type": "integer", "minimum": 1},
                            "activationLagThreshold": {"type": "integer", "minimum": 0},
                            "pollingInterval": {"type": "integer", "minimum": 1},
                            "cooldownPeriod": {"type": "integer", "minimum": 0},
                        },
                    },
                    "hpa": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "targetCPUUtilizationPercentage": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 100,
                            }
                        },
                    },
                },
            },
            "pdb": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "enabled": {"type": "boolean"},
                    "maxUnavailable": {"type": ["integer", "string"]},
                },
            },
            "resources": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "requests": {"type": "object", "additionalProperties": quantity},
                    "limits": {"type": "object", "additionalProperties": quantity},
                },
            },
            "config": {
                "type": "object",
                "propertyNames": _ENV_NAME,
                "additionalProperties": {"type": ["string", "number", "boolean"]},
            },
            "secretEnv": _global_schema()["properties"]["secretEnv"],  # type: ignore[index]
            "serviceMonitor": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "enabled": {"enum": [True, False, "auto"]},
                    "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                },
            },
            "terminationGracePeriodSeconds": {"type": "integer", "minimum": 1},
            "podSecurityContext": {"type": "object"},
            "securityContext": {"type": "object"},
        },
    }


def umbrella_schema() -> dict[str, object]:
    props: dict[str, object] = {
        "global": _global_schema(),
        "spanline-lib": {"type": "object"},
        "jobs": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"topics": {"type": "boolean"}, "migrate": {"type": "boolean"}},
        },
        "prometheusRule": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"enabled": {"enum": [True, False, "auto"]}},
        },
        "dashboards": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "label": {"type": "string"},
                "labelValue": {"type": "string"},
            },
        },
    }
    for s in SERVICES:
        # each subchart validates its own keys with its own schema; here only the switch
        props[s.name] = {"type": "object", "properties": {"enabled": {"type": "boolean"}}}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "spanline umbrella chart values",
        "type": "object",
        "additionalProperties": False,
        "properties": props,
    }


# ---------------------------------------------------------------------------- charts and READMEs


def service_chart_yaml(s: Service) -> str:
    return f"""apiVersion: v2
name: {s.name}
description: "spanline {s.name}: {s.summary}"
type: application
version: {VERSION}
appVersion: "{APP_VERSION}"
kubeVersion: ">=1.27.0-0"
dependencies:
  - name: spanline-lib
    version: {VERSION}
    repository: file://../../../spanline-lib
"""


def umbrella_chart_yaml() -> str:
    deps = "".join(
        f'  - name: {s.name}\n    version: {VERSION}\n    repository: ""\n    condition: {s.name}.enabled\n'
        for s in SERVICES
    )
    return f"""apiVersion: v2
name: spanline
description: Event-driven pipeline for LLM and agent traces (all six services, alert rules, dashboards)
type: application
version: {VERSION}
appVersion: "{APP_VERSION}"
kubeVersion: ">=1.27.0-0"
dependencies:
  - name: spanline-lib
    version: {VERSION}
    repository: file://../spanline-lib
{deps}"""


_COMMENT = re.compile(r"^(\s*)# -- (.*)$")
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_-]+):(.*)$")


def values_table(values_text: str) -> str:
    """A helm-docs-like table: every key preceded by a `# --` comment, with its dotted path."""
    rows = ["| key | default | description |", "|---|---|---|"]
    stack: list[tuple[int, str]] = []
    pending = ""
    for line in values_text.splitlines():
        m = _COMMENT.match(line)
        if m:
            pending = m.group(2)
            continue
        k = _KEY.match(line)
        if not k or line.lstrip().startswith("-"):
            continue
        depth = len(k.group(1))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        stack.append((depth, k.group(2)))
        if pending:
            path = ".".join(name for _, name in stack)
            default = k.group(3).strip() or "(see values.yaml)"
            text = pending.replace("|", "\\|")
            rows.append(f"| `{path}` | `{default}` | {text} |")
            pending = ""
    return "\n".join(rows) + "\n"


def service_readme(s: Service, values_text: str) -> str:
    return f"""# spanline {s.name} chart

{s.summary}. Installed by the umbrella chart `charts/spanline`, or alone:

```sh
helm dependency build charts/spanline/charts/{s.name}
helm install {s.name} charts/spanline/charts/{s.name} --set global.kafka.bootstrap=kafka:9092
```

Generated by `charts/generate.py` (values table from the `# --` comments of values.yaml).

## Values

{values_table(values_text)}"""


def umbrella_readme(values_text: str) -> str:
    return f"""# spanline umbrella chart

Installs the six spanline services (one subchart each under `charts/`), a Job that
creates the topics, a Job that applies the ClickHouse migrations, the PrometheusRule of
pipeline health (`rules/`) and the Grafana dashboards (`dashboards/`). Kafka, ClickHouse
and S3 are external: point `global.kafka`, `global.config` and `global.secretEnv` at
them. See docs/operations.md for installing, scaling, upgrading and the alert runbook.

Generated by `charts/generate.py` (values table from the `# --` comments of values.yaml).

## Values

{values_table(values_text)}"""


SERVICE_TEMPLATE = '{{- include "spanline.service" . }}\n'


def expected_files() -> dict[Path, str]:
    files: dict[Path, str] = {}
    for s in SERVICES:
        d = UMBRELLA / "charts" / s.name
        values = "# Generated by charts/generate.py; edit the generator, not this file.\n" + _service_values(
            s
        )
        files[d / "Chart.yaml"] = service_chart_yaml(s)
        files[d / "values.yaml"] = values
        files[d / "values.schema.json"] = json.dumps(service_schema(), indent=2) + "\n"
        files[d / "templates" / "service.yaml"] = SERVICE_TEMPLATE
        files[d / "README.md"] = service_readme(s, values)
    umbrella = umbrella_values()
    files[UMBRELLA / "Chart.yaml"] = umbrella_chart_yaml()
    files[UMBRELLA / "values.yaml"] = umbrella
    files[UMBRELLA / "values.schema.json"] = json.dumps(umbrella_schema(), indent=2) + "\n"
    files[UMBRELLA / "README.md"] = umbrella_readme(umbrella)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on drift")
    args = parser.parse_args(argv)
    drift = []
    for path, text in expected_files().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            drift.append(path.relative_to(CHARTS.parent))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(CHARTS.parent)}")
    if drift:
        print("generated chart files differ from charts/generate.py (run it and commit):", file=sys.stderr)
        for p in drift:
            print(f"  {p}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
