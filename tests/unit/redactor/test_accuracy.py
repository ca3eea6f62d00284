"""Accuracy targets of issue 3 on the committed labeled corpora (an accuracy test, not a timing one).

Corpora: tests/data/pii_corpus.jsonl (generated once with presidio-evaluator by
benchmarks/make_pii_corpus.py) and tests/data/secrets_corpus.jsonl. The printed table
comes from ``python -m benchmarks.redactor_accuracy``.
"""

from __future__ import annotations

import pytest

from benchmarks.redactor_accuracy import (
    PII_TYPES,
    TARGET_PRECISION,
    TARGET_RECALL,
    TARGET_SECRETS_RECALL,
    Score,
    evaluate,
    load,
)
from spanline.redactor.detectors import BUILTIN_DETECTORS, Scanner, builtin_detectors


@pytest.fixture(scope="module")
def pii_scores() -> dict[str, Score]:
    scores, _ = evaluate(load("pii_corpus.jsonl"), PII_TYPES)
    return scores


@pytest.mark.parametrize("detector", sorted(TARGET_RECALL))
def test_pii_recall(pii_scores: dict[str, Score], detector: str) -> None:
    score = pii_scores[detector]
    assert score.gold >= 200, "corpus too small to measure this detector"
    assert score.recall >= TARGET_RECALL[detector], (detector, score.as_dict())
    assert score.coverage >= TARGET_RECALL[detector], (detector, score.as_dict())


def test_precision_on_structured_types(pii_scores: dict[str, Score]) -> None:
    predicted = sum(pii_scores[d].predicted for d in TARGET_RECALL)
    correct = sum(pii_scores[d].correct for d in TARGET_RECALL)
    assert correct / predicted >= TARGET_PRECISION
    # and no secret or national-id detector fires on ordinary PII text ("name" finds the
    # corpus' PERSON spans, scored by benchmarks/redaction_recall.py)
    assert not [d for d, s in pii_scores.items() if d not in TARGET_RECALL and d != "name" and s.predicted]


def test_secrets_recall_is_total() -> None:
    scores, misses = evaluate(load("secrets_corpus.jsonl"), None)
    assert len(scores) >= 13
    for detector, score in scores.items():
        assert score.recall >= TARGET_SECRETS_RECALL, (detector, score.as_dict())
        assert score.coverage == 1.0, (detector, score.as_dict())
    assert not [m for m in misses if m["kind"] == "missed"]


def test_same_results_without_the_prefilter() -> None:
    rows = load("pii_corpus.jsonl")[:1500] + load("secrets_corpus.jsonl")
    plain = Scanner(builtin_detectors(frozenset(BUILTIN_DETECTORS)), prefilter=False)
    fast = Scanner(builtin_detectors(frozenset(BUILTIN_DETECTORS)))
    for row in rows:
        assert fast.scan(row["text"]) == plain.scan(row["text"]), row["text"]
