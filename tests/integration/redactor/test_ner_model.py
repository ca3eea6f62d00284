"""NER with the real spaCy model (en_core_web_sm 3.8.0 from the `ner` extra): on, off, missing."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from spanline.redactor.config import RedactorSettings
from spanline.redactor.engine import Redactor
from spanline.redactor.errors import PolicyError

pytest.importorskip("spacy")


@pytest.fixture(scope="module")
def with_ner() -> Redactor:
    return Redactor.from_settings(RedactorSettings(ner=True))


def test_ner_on_tags_names_the_fast_detector_cannot_see(with_ner: Redactor) -> None:
    text = "Yesterday Tobias Krämerling and Ngozi Okonkwo-Adeyemi met in Rotterdam."
    out, report = with_ner.redact_text(text, "p")
    assert "Okonkwo" not in out and "Rotterdam" not in out, out
    assert report.by_detector().get("person", 0) >= 1 and report.by_detector().get("location") == 1


def test_ner_off_leaves_them(with_ner: Redactor) -> None:
    text = "Yesterday Tobias Krämerling and Ngozi Okonkwo-Adeyemi met in Rotterdam."
    assert Redactor().redact_text(text, "p")[0] == text


def test_ner_on_spans_only_free_text(with_ner: Redactor) -> None:
    td = TracesData()
    span = td.resource_spans.add().scope_spans.add().spans.add(name="chat")
    doc = json.dumps([{"role": "user", "content": "Please book a table for Ngozi Okonkwo-Adeyemi."}])
    span.attributes.extend(
        [
            KeyValue(key="gen_ai.input.messages", value=AnyValue(string_value=doc)),
            KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="Claude Sonnet")),
        ]
    )
    with_ner.redact_traces(td, "p")
    attrs = {a.key: a.value.string_value for a in span.attributes}
    assert "Okonkwo" not in attrs["gen_ai.input.messages"]
    assert json.loads(attrs["gen_ai.input.messages"])[0]["role"] == "user"
    assert attrs["gen_ai.request.model"] == "Claude Sonnet"


def test_ner_on_with_the_model_missing_fails_at_start_up() -> None:
    with pytest.raises(PolicyError, match="spaCy model 'xx_missing_model' is not installed"):
        Redactor.from_settings(RedactorSettings(ner=True, ner_model="xx_missing_model"))


@pytest.mark.parametrize(
    "text",
    [
        "Compare Claude Sonnet 4.5 and gpt-4o on Q3 latency.",
        "The cluster has 12 nodes with 64 GiB of memory each.",
        "Schreibe eine kurze Zusammenfassung des Artikels über Python 3.12.",
        "Please explain how Kafka consumer groups rebalance.",
    ],
)
def test_ner_leaves_model_names_units_and_german_noun_phrases(with_ner: Redactor, text: str) -> None:
    assert with_ner.redact_text(text, "p")[0] == text
