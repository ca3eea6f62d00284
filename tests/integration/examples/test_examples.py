"""Every file in examples/ works as its README says.

The Python apps run as subprocesses (the user's command line) against a real ingest on
the real bundled broker, and their spans are read back from the raw topic. The
OpenTelemetry Collector binary cannot be installed here, so the Collector configs are
parsed as YAML and their keys and values checked against what spanline expects: the
ingest ports, protocol and auth header, the raw topic's name, encoding and keying
(DESIGN.md topics contract), and the pipelines that wire them. A Collector that refused
a key we use would not be caught by this test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from spanline.core.kafka.records import H_PROJECT, H_SIGNAL
from spanline.ingest.config import IngestSettings, hash_api_key
from spanline.ingest.service import IngestService
from spanline.settings import Settings, load_settings
from tests.support.kafka import read_topic_sync
from tests.support.openai_stub import OpenAIStub
from tests.support.services import ServiceThread

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
API_KEY = "example-key-0123456789"


def _run(script: str, *args: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_"))}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.fixture
def ingest(make_settings: Any) -> Any:
    settings = make_settings(ingest={"api_keys": {hash_api_key(API_KEY): "examples"}})
    with ServiceThread(IngestService(settings)) as svc:
        yield settings, svc.component


def _traces_on_raw(settings: Settings, min_messages: int) -> dict[str, list[Any]]:
    spans: dict[str, list[Any]] = defaultdict(list)
    for m in read_topic_sync(settings.kafka.bootstrap, settings.topics.raw, min_messages=min_messages):
        assert m.header(H_PROJECT) == b"examples"
        if m.header(H_SIGNAL) != b"traces":
            continue
        for rs in TracesData.FromString(m.value).resource_spans:
            for ss in rs.scope_spans:
                spans[m.key.hex()].extend(ss.spans)  # type: ignore[union-attr]
    return spans


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_send_traces_app(ingest: Any, protocol: str) -> None:
    settings, svc = ingest
    port = svc.port if protocol == "grpc" else svc.otlp_http_port
    sent = _run(
        "send_traces.py",
        "--protocol", protocol,
        "--endpoint", f"http://127.0.0.1:{port}",
        "--api-key", API_KEY,
        "--traces", "3",
    )  # fmt: skip
    assert len(sent) == 3
    spans = _traces_on_raw(settings, min_messages=3)
    assert set(spans) == set(sent)
    for trace_spans in spans.values():
        assert sorted(s.name for s in trace_spans) == [
            "chat gpt-4o-mini",
            "execute_tool lookup_order",
            "invoke_agent support-bot",
        ]


def test_send_traces_app_fails_loudly_without_the_key(ingest: Any) -> None:
    _settings, svc = ingest
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "send_traces.py"), "--protocol", "http",
         "--endpoint", f"http://127.0.0.1:{svc.otlp_http_port}"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "did not acknowledge" in done.stderr


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_openai_app_against_a_local_stub(ingest: Any, protocol: str) -> None:
    settings, svc = ingest
    port = svc.port if protocol == "grpc" else svc.otlp_http_port
    with OpenAIStub() as stub:
        out = _run(
            "openai_app.py",
            "--base-url", stub.base_url,
            "--model", "gpt-4o-mini",
            "--protocol", protocol,
            "--endpoint", f"http://127.0.0.1:{port}",
            "--api-key", API_KEY,
        )  # fmt: skip
        assert len(stub.requests) == 1
    trace_id, answer = out[0], "\n".join(out[1:])
    assert answer  # the stub's reply came back through the instrumented client
    msgs = read_topic_sync(settings.kafka.bootstrap, settings.topics.raw, min_messages=2)
    spans = _traces_on_raw(settings, min_messages=1)[trace_id]
    chat = next(s for s in spans if s.name.startswith("chat"))
    attrs = {a.key: a.value for a in chat.attributes}
    assert attrs["gen_ai.request.model"].string_value == "gpt-4o-mini"
    assert attrs["gen_ai.usage.input_tokens"].int_value > 0
    assert "gen_ai.input.messages" in attrs  # content captured (span_and_event)
    assert {s.name for s in spans} >= {"invoke_agent support-bot"}
    logs = [m for m in msgs if m.header(H_SIGNAL) == b"logs"]
    assert logs, "the GenAI event (log record) reached the raw topic"
    records = [r for m in logs for rl in LogsData.FromString(m.value).resource_logs for sl in rl.scope_logs
               for r in sl.log_records]  # fmt: skip
    assert any(r.trace_id.hex() == trace_id for r in records)


# -- Collector configs: parsed, not run (no Collector binary here) ---------------------

_ENV_DEFAULT = re.compile(r"\$\{env:([A-Z0-9_]+)(?::-([^}]*))?\}")


def _load(name: str) -> dict[str, Any]:
    text = (EXAMPLES / "collector" / name).read_text()
    # ${env:VAR:-default} as the Collector expands it, with nothing set: the default.
    doc = yaml.safe_load(_ENV_DEFAULT.sub(lambda m: m.group(2) or "", text))
    assert isinstance(doc, dict)
    for section in ("receivers", "processors", "exporters", "service"):
        assert section in doc, section
    # every component a pipeline names is defined
    for pipeline in doc["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in doc[kind], component
    return doc


def _check_otlp_to_ingest(exporter: dict[str, Any]) -> None:
    ingest = IngestSettings()
    host, _, port = exporter["endpoint"].rpartition(":")
    assert host and int(port) == ingest.port == 4317  # OTLP/gRPC ingest
    assert exporter["tls"]["insecure"] is True  # ingest serves plaintext gRPC
    assert exporter["compression"] == "gzip"  # ingest accepts gzip
    assert exporter["retry_on_failure"]["enabled"] is True  # UNAVAILABLE must be retried
    assert exporter["sending_queue"]["enabled"] is True


def test_collector_forwards_to_ingest_over_otlp() -> None:
    doc = _load("config.yaml")
    grpc_in = doc["receivers"]["otlp"]["protocols"]
    assert set(grpc_in) == {"grpc", "http"}
    exporter = doc["exporters"]["otlp/spanline"]
    _check_otlp_to_ingest(exporter)
    # the form ingest's API key check reads (the key itself comes from the environment)
    assert exporter["headers"]["authorization"].split()[0] == "Bearer"
    pipelines = doc["service"]["pipelines"]
    assert set(pipelines) == {"traces", "logs"}  # spanline takes no metrics
    assert all(p["exporters"] == ["otlp/spanline"] for p in pipelines.values())


def test_collector_publishes_traces_to_the_raw_topic() -> None:
    doc = _load("kafka.yaml")
    settings = load_settings()  # the defaults
    kafka = doc["exporters"]["kafka/spanline-raw"]
    assert kafka["brokers"] == ["127.0.0.1:9092"]
    assert kafka["traces"]["topic"] == settings.topics.raw == "spanline.raw"
    assert kafka["traces"]["encoding"] == "otlp_proto"  # the raw topic's value encoding
    assert kafka["partition_traces_by_id"] is True  # one record per trace, keyed by trace id
    assert kafka["producer"]["required_acks"] == -1  # acks=all, as ingest produces
    assert kafka["producer"]["max_message_bytes"] <= settings.kafka.max_request_size
    assert "logs" not in kafka and "metrics" not in kafka
    pipelines = doc["service"]["pipelines"]
    assert pipelines["traces"]["exporters"] == ["kafka/spanline-raw"]
    # logs carry no spanline-signal header on this route, so they must go through ingest
    assert pipelines["logs"]["exporters"] == ["otlp/spanline"]
    _check_otlp_to_ingest(doc["exporters"]["otlp/spanline"])
    assert set(pipelines) == {"traces", "logs"}
