"""Metrics names/labels, and NER staying out of the way unless enabled."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from prometheus_client import REGISTRY

from spanline.redactor import metrics
from spanline.redactor.config import RedactorSettings
from spanline.redactor.engine import Redactor
from spanline.redactor.errors import PolicyError
from spanline.redactor.policy import parse_policy

from .conftest import kv


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
    pytest.importorskip("spacy")
    with pytest.raises(PolicyError, match="spaCy model 'no_such_model_xx' is not installed"):
        Redactor.from_settings(RedactorSettings(ner=True, ner_model="no_such_model_xx"))


class FakeNer:
    """Tags "Vorn Tassik" wherever it is (the real model is exercised in tests/integration)."""

    calls: list[int]

    def __init__(self) -> None:
        self.calls = []

    def worth_tagging(self, text: str) -> bool:
        return any(c.isupper() for c in text)

    def find_many(self, texts: Sequence[str]) -> list[list[tuple[int, int, str]]]:
        self.calls.append(len(texts))
        out = []
        for text in texts:
            i = text.find("Vorn Tassik")
            out.append([(i, i + len("Vorn Tassik"), "person")] if i >= 0 else [])
        return out


def test_ner_findings_use_policy_actions() -> None:
    """NER findings follow the policy like any other detector's."""
    r = Redactor(parse_policy({"detectors": {"person": "pseudonymize"}}), ner=FakeNer(), pseudonym_secret="k")
    out, report = r.redact_text("Vorn Tassik lives at a@b.example", "p")
    assert out.startswith("<PERSON:") and out.endswith(" lives at <EMAIL>")
    assert report.counts == {("person", "pseudonymize"): 1, ("email", "mask"): 1}


def test_ner_runs_only_on_free_text_fields_in_one_batch() -> None:
    ner = FakeNer()
    r = Redactor(ner=ner)
    td = TracesData()
    span = td.resource_spans.add().scope_spans.add().spans.add(name="chat")
    messages = json.dumps(
        [{"role": "user", "content": "I am Vorn Tassik"}, {"role": "user", "content": "Hi"}]
    )
    span.attributes.extend([kv("gen_ai.input.messages", messages), kv("app.owner", "Vorn Tassik")])
    report = r.redact_traces(td, "p")
    attrs = {a.key: a.value.string_value for a in span.attributes}
    assert json.loads(attrs["gen_ai.input.messages"])[0]["content"] == "I am <PERSON>"
    assert attrs["app.owner"] == "Vorn Tassik"  # not a free-text field: NER does not look
    assert attrs["spanline.redaction"] == "person=1"
    assert report.by_detector() == {"person": 1}
    assert ner.calls == [2]  # both message contents in one batch


def test_ner_is_a_per_project_switch() -> None:
    r = Redactor(parse_policy({"projects": {"quiet": {"detectors": {"ner": "off"}}}}), ner=FakeNer())
    assert r.redact_text("Vorn Tassik", "quiet")[0] == "Vorn Tassik"
    assert r.redact_text("Vorn Tassik", "other")[0] == "<PERSON>"


def test_ner_on_log_bodies_keeps_the_regex_summary() -> None:
    r = Redactor(ner=FakeNer())
    logs = LogsData()
    rec = logs.resource_logs.add().scope_logs.add().log_records.add()
    rec.body.string_value = "Vorn Tassik wrote from a@b.example"
    r.redact_logs(logs, "p")
    assert rec.body.string_value == "<PERSON> wrote from <EMAIL>"
    summary = {a.key: a.value.string_value for a in rec.attributes}["spanline.redaction"]
    assert summary == "email=1,person=1"


def test_a_failing_detector_fails_closed() -> None:
    """A detector that raises fails the message (the service sends it to the DLQ); the
    partly redacted message never goes downstream."""
    from spanline.redactor.errors import RedactionError

    class BrokenNer(FakeNer):
        def find_many(self, texts: Sequence[str]) -> list[list[tuple[int, int, str]]]:
            raise ValueError("model crashed on Vorn Tassik")

    r = Redactor(ner=BrokenNer())
    td = TracesData()
    span = td.resource_spans.add().scope_spans.add().spans.add(name="chat")
    span.attributes.extend([kv("gen_ai.input.messages", "Vorn Tassik, a@b.example")])
    with pytest.raises(RedactionError, match=r"internal error while redacting \(ValueError\)") as info:
        r.redact_payload(td.SerializeToString(), "traces", "p")
    assert "Vorn" not in str(info.value)
