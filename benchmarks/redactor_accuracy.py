"""Redactor accuracy: per-entity recall and precision on the committed labeled corpora.

Run from the repo root: ``python -m benchmarks.redactor_accuracy``. Corpora:
``tests/data/pii_corpus.jsonl`` (presidio-evaluator, see benchmarks/make_pii_corpus.py)
and ``tests/data/secrets_corpus.jsonl``.

Matching is by span overlap: a labeled span is found if a finding of the same type
overlaps it; a finding is correct if it overlaps a labeled span of its type, and a false
positive otherwise (including findings on distractor entities such as dates, zip codes or
street numbers). ``covered`` is stricter: the share of labeled spans whose every character
is inside some finding (what is left visible after masking). Results are printed and
written to ``benchmarks/results/redactor_accuracy.json``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.make_pii_corpus import ENTITY_TO_DETECTOR
from spanline.redactor.detectors import BUILTIN_DETECTORS, Scanner, builtin_detectors
from spanline.redactor.detectors.base import SECRET_DETECTORS

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
RESULTS = Path(__file__).resolve().parent / "results" / "redactor_accuracy.json"
PII_TYPES = ENTITY_TO_DETECTOR  # the corpus labels, as generated
TARGET_RECALL = {"email": 0.98, "card": 0.98, "iban": 0.98, "ip": 0.98, "ssn": 0.98, "phone": 0.95}
TARGET_SECRETS_RECALL = 1.0
TARGET_PRECISION = 0.95


@dataclass
class Score:
    gold: int = 0
    found: int = 0
    covered: int = 0
    predicted: int = 0
    correct: int = 0

    @property
    def recall(self) -> float:
        return self.found / self.gold if self.gold else 1.0

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 1.0

    @property
    def coverage(self) -> float:
        return self.covered / self.gold if self.gold else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "gold": self.gold,
            "predicted": self.predicted,
            "recall": round(self.recall, 4),
            "precision": round(self.precision, 4),
            "covered": round(self.coverage, 4),
        }


def load(name: str) -> list[dict[str, Any]]:
    with (DATA / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def evaluate(
    rows: list[dict[str, Any]], type_map: dict[str, str] | None, scanner: Scanner | None = None
) -> tuple[dict[str, Score], list[dict[str, Any]]]:
    """Scores per detector; ``type_map`` maps corpus types to detectors (None: identical)."""
    scanner = scanner or Scanner(builtin_detectors(frozenset(BUILTIN_DETECTORS)))
    scores: dict[str, Score] = {}
    misses: list[dict[str, Any]] = []
    for row in rows:
        text = row["text"]
        gold = []
        for s in row["spans"]:
            det = type_map.get(s["type"]) if type_map is not None else s["type"]
            if det is not None:
                gold.append((s["start"], s["end"], det))
        preds = scanner.scan(text)
        for start, end, det in gold:
            sc = scores.setdefault(det, Score())
            sc.gold += 1
            same = [(ps, pe) for ps, pe, pd in preds if pd == det and ps < end and start < pe]
            if same:
                sc.found += 1
            else:
                misses.append({"kind": "missed", "detector": det, "value": text[start:end], "text": text})
            if all(any(ps <= i < pe for ps, pe, _ in preds) for i in range(start, end)):
                sc.covered += 1
        for ps, pe, pd in preds:
            sc = scores.setdefault(pd, Score())
            sc.predicted += 1
            if any(gd == pd and ps < ge and gs < pe for gs, ge, gd in gold):
                sc.correct += 1
            else:
                misses.append({"kind": "false_positive", "detector": pd, "value": text[ps:pe], "text": text})
    return scores, misses


def _total(scores: dict[str, Score], names: tuple[str, ...] | list[str]) -> Score:
    total = Score()
    for n in names:
        s = scores.get(n)
        if s is not None:
            total.gold += s.gold
            total.found += s.found
            total.covered += s.covered
            total.predicted += s.predicted
            total.correct += s.correct
    return total


def run() -> dict[str, Any]:
    pii_scores, pii_misses = evaluate(load("pii_corpus.jsonl"), PII_TYPES)
    secret_scores, secret_misses = evaluate(load("secrets_corpus.jsonl"), None)
    structured = list(TARGET_RECALL)
    pii_total = _total(pii_scores, structured)
    secrets_total = _total(secret_scores, [d for d in SECRET_DETECTORS if d in secret_scores])
    checks = {f"recall_{d}": pii_scores.get(d, Score()).recall >= t for d, t in TARGET_RECALL.items()}
    checks["recall_secrets"] = secrets_total.recall >= TARGET_SECRETS_RECALL
    checks["precision_structured"] = pii_total.precision >= TARGET_PRECISION
    return {
        "pii": {d: pii_scores[d].as_dict() for d in sorted(pii_scores)},
        "pii_structured_total": pii_total.as_dict(),
        "secrets": {d: secret_scores[d].as_dict() for d in sorted(secret_scores)},
        "secrets_total": secrets_total.as_dict(),
        "targets": {
            "recall": TARGET_RECALL,
            "secrets_recall": TARGET_SECRETS_RECALL,
            "precision": TARGET_PRECISION,
        },
        "checks": checks,
        "examples": {
            "pii": pii_misses[:25],
            "secrets": secret_misses[:25],
        },
    }


def _table(title: str, rows: dict[str, dict[str, Any]], total: dict[str, Any]) -> None:
    print(f"\n{title}")
    print(f"  {'detector':16} {'gold':>6} {'pred':>6} {'recall':>8} {'precision':>10} {'covered':>8}")
    for name, r in [*rows.items(), ("TOTAL", total)]:
        counts = f"{r['gold']:6} {r['predicted']:6}"
        print(f"  {name:16} {counts} {r['recall']:8.4f} {r['precision']:10.4f} {r['covered']:8.4f}")


def main() -> int:
    result = run()
    _table("PII corpus (presidio-evaluator)", result["pii"], result["pii_structured_total"])
    _table("Secrets corpus", result["secrets"], result["secrets_total"])
    failed = [k for k, ok in result["checks"].items() if not ok]
    print("\ntargets:", "all met" if not failed else "NOT met: " + ", ".join(failed))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    result_out = {k: v for k, v in result.items() if k != "examples"}
    RESULTS.write_text(json.dumps(result_out, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    if "-v" in sys.argv:
        for group in ("pii", "secrets"):
            for ex in result["examples"][group]:
                print(ex["kind"], ex["detector"], repr(ex["value"]), "|", repr(ex["text"][:160]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
