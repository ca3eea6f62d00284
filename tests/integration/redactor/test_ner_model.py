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
        # German: every noun is capitalised, the English model reads lone nouns as people/places.
        "Wie viele Tokens kostet ein Prompt mit 1388 Wörtern?",
        "Bitte die Rückerstattung für die Nummer auf dem Telefon prüfen.",
        # Landmarks (spaCy FAC) are not about a person.
        "Write a haiku about the Berlin Wall and the river Spree.",
    ],
)
def test_ner_leaves_model_names_units_and_german_noun_phrases(with_ner: Redactor, text: str) -> None:
    assert with_ner.redact_text(text, "p")[0] == text


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        # The model reads "Rechnung" as a person: a lone German word that is no given name.
        ("Bitte schicke die Rechnung an mich in 10115 Berlin.", ("Berlin",), ("Rechnung",)),
        ("Ich wohne in der Gumprichstraße.", ("Gumprichstraße",), ()),
    ],
)
def test_ner_in_german_keeps_places_after_a_preposition_and_streets(
    with_ner: Redactor, text: str, gone: tuple[str, ...], kept: tuple[str, ...]
) -> None:
    out = with_ner.redact_text(text, "p")[0]
    assert all(word not in out for word in gone) and all(word in out for word in kept), out


@pytest.mark.parametrize(
    ("text", "worth"),
    [
        ("Set max_tokens to 2271 and temperature to 0.3.", False),  # only a sentence opener
        ("Please explain how Kafka consumer groups rebalance.", True),
        ("John called about the invoice.", True),  # a known given name opening it
        ("Thanks.\\nMaria", True),  # after a literal \n escape
        ("ok", False),
    ],
)
def test_ner_skips_text_whose_only_capitals_open_sentences(
    with_ner: Redactor, text: str, worth: bool
) -> None:
    ner = with_ner.policy_for("p").ner
    assert ner is not None and ner.worth_tagging(text) is worth
