"""Metrics names/labels, and NER staying out of the way unless enabled."""

from __future__ import annotations

import subprocess
import sys

import pytest
from prometheus_client import REGISTRY

from spanline.redactor import metrics
from spanline.redactor.config import RedactorSettings
from spanline.redactor.engine import Redactor
from spanline.redactor.errors import PolicyError


def test_engine_counts_redactions_by_detector_only() -> None:
    before = REGISTRY.get_sample_value("spanline_redactor_redactions_total", {"detector": "email"}) or 0.0
    Redactor().redact_text("x", "p")  # values are not counted in metrics, messages are
    from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

    from .conftest import kv

    td = TracesData()
    td.resource_spans.add().scope_spans.add().spans.add(name="s").attributes.append(
        kv("m", "a@b.example c@d.example")
    )
    Redactor().redact_traces(td, "p")
    after = REGISTRY.get_sample_value("spanline_redactor_redactions_total", {"detector": "email"})
    assert after == before + 2
    assert metrics.REDACTIONS._labelnames == ("detector",)


def test_metric_names_are_prefixed() -> None:
    for m in (metrics.MESSAGES, metrics.BYTES, metrics.REDACTIONS, metrics.DLQ, metrics.LATENCY):
        assert m._name.startswith("spanline_redactor_")


def test_engine_does_not_import_presidio_unless_ner_enabled() -> None:
    code = (
        "import sys; from spanline.redactor.engine import Redactor; "
        "from spanline.redactor.config import RedactorSettings; "
        "Redactor.from_settings(RedactorSettings()).redact_text('a@b.example', 'p'); "
        "assert not [m for m in sys.modules if m.startswith(('presidio', 'spacy'))], 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ner_enabled_without_model_is_a_clear_policy_error() -> None:
    pytest.importorskip("presidio_analyzer")
    with pytest.raises(PolicyError, match="spaCy model 'no_such_model_xx' is not installed"):
        Redactor.from_settings(RedactorSettings(ner=True, ner_model="no_such_model_xx"))


def test_ner_findings_use_policy_actions() -> None:
    """NER plugs in as a text detector; its findings follow the policy like any other."""
    from spanline.redactor.policy import parse_policy

    class FakeNer:
        name = "ner"

        def find(self, text: str, out: list[tuple[int, int, str]]) -> None:
            i = text.find("Alice Smith")
            if i >= 0:
                out.append((i, i + len("Alice Smith"), "person"))

    r = Redactor(parse_policy({"detectors": {"person": "pseudonymize"}}), ner=FakeNer(), pseudonym_secret="k")
    out, report = r.redact_text("Alice Smith lives at a@b.example", "p")
    assert out.startswith("<PERSON:") and out.endswith(" lives at <EMAIL>")
    assert report.counts == {("person", "pseudonymize"): 1, ("email", "mask"): 1}
