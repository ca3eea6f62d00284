"""Optional named-entity detection (people, locations) through Presidio.

Off by default: it is two orders of magnitude slower than the regex detectors and needs
the ``spanline[ner]`` extra plus an installed spaCy model. Imported lazily so that the
engine never pays for it, nor depends on it, unless enabled.
"""

from __future__ import annotations

from typing import Any

from spanline.redactor.detectors import Finding
from spanline.redactor.errors import PolicyError

_ENTITY_TO_DETECTOR = {"PERSON": "person", "LOCATION": "location", "GPE": "location"}


class PresidioNer:
    """A text detector reporting ``person`` and ``location`` findings."""

    name = "ner"

    def __init__(self, model: str = "en_core_web_lg", score_threshold: float = 0.5) -> None:
        try:
            import spacy.util
            from presidio_analyzer import AnalyzerEngine
            from presidio_analyzer.nlp_engine import NlpEngineProvider
        except ImportError:
            raise PolicyError(
                "redactor.ner is enabled but the 'ner' extra is not installed: pip install 'spanline[ner]'"
            ) from None
        # Presidio would try to download a missing model at run time; refuse instead.
        if not spacy.util.is_package(model):
            raise PolicyError(
                f"redactor.ner is enabled but the spaCy model {model!r} is not installed "
                "(install its wheel, or set redactor.ner_model to an installed one)"
            )
        provider = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": model}],
            }
        )
        self._engine: Any = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
        self._threshold = score_threshold
        self._entities = sorted(_ENTITY_TO_DETECTOR)

    def find(self, text: str, out: list[Finding]) -> None:
        if len(text) < 3:
            return
        for r in self._engine.analyze(
            text=text, language="en", entities=self._entities, score_threshold=self._threshold
        ):
            out.append((r.start, r.end, _ENTITY_TO_DETECTOR[r.entity_type]))
