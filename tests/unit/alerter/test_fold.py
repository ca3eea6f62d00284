"""The fold's fast paths against a naive reference: every rule sees every score it matches.

The folder remembers which rules a (score name, evaluator kind) pair feeds, reads group
labels once per group_by, keeps one slot per alert across batches and writes partials
from cached JSON fragments. Here the same scores go through a plain loop over every
rule (match, labels, bucket, value, weight) and the decoded partials must add up to
exactly what that loop computed.
"""

from __future__ import annotations

import gc
import json
import math
import random
from collections import defaultdict
from typing import Any

import pytest
import yaml

from spanline.alerter import fold as fold_module
from spanline.alerter.aggregate import RAW_LIMIT, Agg
from spanline.alerter.collector import FULL_COLLECTION_EVERY, tune_for_alerter
from spanline.alerter.compiled import CompiledRule, RuleIndex
from spanline.alerter.evaluate import Evaluator
from spanline.alerter.fold import Folder, decode_partial
from spanline.alerter.routing import Router, fingerprint
from spanline.alerter.rules import compare, parse_rules
from spanline.core.collector import gc_paused
from spanline.scorer.scores import KIND_LLM_JUDGE
from spanline.v1.spanline_pb2 import Score

RULES = """
version: 1
defaults: {eval_interval: 1s, group_by: [project, model]}
label_sources: {model: [spanline.model, gen_ai.request.model]}
rules:
  - {name: err-mean, score: error, aggregate: mean, window: 1m, threshold: {op: ">", value: 1}}
  - {name: lat-p95, score: latency_ms, aggregate: p95, window: 1m, bucket: 10s,
     threshold: {op: ">", value: 1}}
  - {name: any-count, score: "*", aggregate: count, window: 5m, group_by: [project, evaluator],
     threshold: {op: ">", value: 1}}
  - {name: judge-pass, score: helpful, evaluator_kind: llm_judge, pass_labels: [pass],
     aggregate: mean, window: 1m, group_by: [project], labels: {team: quality, severity: critical},
     threshold: {op: "<", value: 0.5}}
  - {name: heur-max, score: [error, latency_ms], evaluator_kind: heuristic, aggregate: max,
     window: 1m, group_by: [evaluator_kind, agent], threshold: {op: ">", value: 1}}
  - {name: slow-ratio, score: latency_ms, aggregate: ratio, ratio: {op: ">=", value: 500},
     window: 1m, threshold: {op: ">", value: 0.5}}
route:
  receiver: team
  group_by: [alertname, project]
  routes:
    - {matchers: {severity: critical}, group_by: [project]}
receivers: [{name: team, console: true}]
"""

T0 = 1_767_600_000.0


def _rules() -> Any:
    return parse_rules(yaml.safe_load(RULES))


def _scores(n: int, seed: int = 7) -> list[tuple[float, Score, str, int]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = rng.choice(["heuristic", "heuristic", KIND_LLM_JUDGE])
        s = Score(
            name=rng.choice(["error", "latency_ms", "helpful", "other"]),
            score_value=rng.choice([0.0, 1.0, 120.0, 480.0, 500.0, 2500.5]),
            score_label=rng.choice(["pass", "fail", ""]) if kind == KIND_LLM_JUDGE else "",
            project_id=rng.choice(["shop", "bank", ""]),
            evaluator_kind=kind,
            sampling_weight=rng.choice([0.0, 1.0, 1.0, 4.0]),
        )
        which = rng.randrange(4)
        if which in (1, 3):
            s.attributes["spanline.model"] = rng.choice(["gpt", "claude"])
        if which in (2, 3):
            s.attributes["gen_ai.request.model"] = "llama"
        if rng.random() < 0.5:
            s.attributes["agent"] = "planner"
        out.append((T0 + rng.uniform(0, 90), s, str(rng.randrange(3)), i))
    return out


def _label(score: Score, name: str, sources: dict[str, list[str]]) -> str:
    if name == "project":
        return score.project_id
    if name == "evaluator":
        return score.name
    if name == "evaluator_kind":
        return score.evaluator_kind
    for key in sources.get(name, [name]):
        if score.attributes.get(key):
            return score.attributes[key]
    return ""


def _matches(rule: CompiledRule, score: Score) -> bool:
    if score.evaluator_kind == KIND_LLM_JUDGE and not score.score_label:
        return False
    named = rule.any_score or score.name in rule.scores
    return named and (rule.evaluator_kind is None or rule.evaluator_kind == score.evaluator_kind)


Sums = dict[tuple[str, int], list[Any]]


def _reference(
    index: RuleIndex, router: Router, scores: list[tuple[float, Score, str, int]]
) -> tuple[Sums, dict[str, Any]]:
    """Every rule, every score, no caches: (fingerprint, bucket) -> [n, w, s, h, min, max, raw pairs]."""
    sums: Sums = {}
    who: dict[str, tuple[str, dict[str, str], str]] = {}
    for t, score, _src, _off in scores:
        for rule in index.rules:
            if not _matches(rule, score):
                continue
            labels = {name: _label(score, name, index.label_sources) for name in rule.group_by}
            labels.update(rule.labels)
            labels["alertname"] = rule.name
            fp = fingerprint(labels)
            who[fp] = (rule.name, labels, router.plan(labels).group_key(labels))
            value = score.score_value
            if rule.pass_labels is not None:
                value = 1.0 if score.score_label in rule.pass_labels else 0.0
            weight = score.sampling_weight if score.sampling_weight > 0 else 1.0
            hit = rule.aggregate == "ratio" and compare(rule.ratio_op, value, rule.ratio_value)
            bucket = int(t // rule.bucket_s * rule.bucket_s)
            acc = sums.setdefault((fp, bucket), [0, 0.0, 0.0, 0.0, math.inf, -math.inf, []])
            acc[0] += 1
            acc[1] += weight
            acc[2] += value * weight
            acc[3] += weight if hit else 0.0
            acc[4] = min(acc[4], value)
            acc[5] = max(acc[5], value)
            if rule.needs_sketch:
                acc[6].append((value, weight))
    return sums, who


def _folded(
    folder: Folder, scores: list[tuple[float, Score, str, int]], batch: int
) -> tuple[Sums, dict[str, Any]]:
    """Fold in batches, decode every partial, add its entries up the same way."""
    sums: Sums = {}
    who: dict[str, tuple[str, dict[str, str], str]] = {}
    src_max: dict[str, dict[str, int]] = defaultdict(dict)
    for start in range(0, len(scores), batch):
        chunk = scores[start : start + batch]
        for t, score, src, off in chunk:
            folder.fold(score, t, src, off)
        for key, value in folder.drain():
            part = decode_partial(value)
            assert part.group_key == key
            for k, v in part.src.items():
                assert v > src_max[key].get(k, -1)  # a later batch names later offsets
                src_max[key][k] = v
            for rule, labels, bucket, agg, fp in part.entries:
                assert who.setdefault(fp, (rule, labels, key)) == (rule, labels, key)
                acc = sums.setdefault((fp, bucket), [0, 0.0, 0.0, 0.0, math.inf, -math.inf, []])
                acc[0] += agg[0]
                acc[1] += agg[1]
                acc[2] += agg[2]
                acc[3] += agg[3]
                acc[4] = min(acc[4], agg[4])
                acc[5] = max(acc[5], agg[5])
                raw = agg[7] or []
                acc[6].extend(zip(raw[::2], raw[1::2], strict=True))
                assert agg[6] is None  # no batch here reaches a sketch
    return sums, who


def _same(got: Sums, want: Sums) -> None:
    assert got.keys() == want.keys()
    for key, acc in want.items():
        g = got[key]
        assert g[0] == acc[0], key
        assert g[1:4] == pytest.approx(acc[1:4]), key
        assert (g[4], g[5]) == (acc[4], acc[5]), key
        assert sorted(g[6]) == sorted(acc[6]), key


@pytest.mark.parametrize("batch", [1, 37, 400])
def test_every_rule_sees_every_matching_score(batch: int) -> None:
    rules = _rules()
    index, router = RuleIndex.from_rules(rules), Router.from_rules(rules)
    scores = _scores(1200)
    want, want_who = _reference(index, router, scores)
    got, got_who = _folded(Folder(index, router), scores, batch)
    _same(got, want)
    assert got_who == want_who
    # each rule and path of the index was exercised
    assert {w[0] for w in want_who.values()} == {r.name for r in index.rules}
    assert {w[2].split("|")[0] for w in want_who.values()} == {"root", "root.0"}  # both routes
    assert any(labels.get("model") == "" for _, labels, _ in want_who.values())


def test_memo_limits_start_over_without_losing_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fold_module, "PLAN_MEMO_LIMIT", 2)
    monkeypatch.setattr(fold_module, "IDENTITY_MEMO_LIMIT", 3)
    rules = _rules()
    index, router = RuleIndex.from_rules(rules), Router.from_rules(rules)
    scores = _scores(600, seed=11)
    folder = Folder(index, router)
    got, _ = _folded(folder, scores, 50)
    want, _ = _reference(index, router, scores)
    _same(got, want)
    assert folder._slot_count <= 3 + 50 * 6  # the identity memo was started over


def test_judge_error_scores_and_unmatched_kinds_fold_nothing() -> None:
    rules = _rules()
    folder = Folder(RuleIndex.from_rules(rules), Router.from_rules(rules))
    folder.fold(Score(name="helpful", evaluator_kind=KIND_LLM_JUDGE, project_id="p"), T0, "0", 1)
    assert folder.drain() == []
    # a heuristic 'helpful' score reaches only the wildcard rule, not the llm_judge one
    folder.fold(
        Score(name="helpful", evaluator_kind="heuristic", score_value=1.0, project_id="p"), T0, "0", 2
    )
    [(_key, value)] = folder.drain()
    assert [e[0] for e in decode_partial(value).entries] == ["any-count"]


def test_a_batch_publishes_only_its_own_scores() -> None:
    rules = _rules()
    folder = Folder(RuleIndex.from_rules(rules), Router.from_rules(rules))
    s = Score(name="error", score_value=1.0, project_id="p", evaluator_kind="heuristic")
    folder.fold(s, T0, "0", 1)
    folder.fold(s, T0, "0", 2)
    first = {k: decode_partial(v) for k, v in folder.drain()}
    folder.fold(s, T0, "0", 3)
    second = {k: decode_partial(v) for k, v in folder.drain()}
    assert first.keys() == second.keys()
    for key in first:
        assert [e[3][0] for e in first[key].entries] == [2]
        assert [e[3][0] for e in second[key].entries] == [1]
        assert first[key].src == {"0": 2} and second[key].src == {"0": 3}


def _agg(values: list[tuple[float, float]], sketch: bool) -> Agg:
    agg = Agg(with_sketch=sketch)
    for v, w in values:
        agg.add(v, w, v > 1)
    return agg


WIRE_CASES = [
    ([(1234.0, 1.0)], False),
    ([(0.1, 1.0)], True),
    ([(0.1, 4.0)], True),
    ([(2.0, 1.0), (3.0, 1.0)], True),
    ([(math.nan, 1.0)], True),
    ([(math.inf, 1.0)], False),
    ([(-math.inf, 1.0)], True),
    ([(1e308, 10.0)], False),
    ([(-0.0, 1.0)], False),
    ([], False),
    ([], True),
    ([(float(i), 1.0) for i in range(RAW_LIMIT + 5)], True),  # spilled into a sketch
]


@pytest.mark.parametrize(("values", "sketch"), WIRE_CASES)
def test_wire_text_is_the_json_of_to_wire(values: list[tuple[float, float]], sketch: bool) -> None:
    agg = _agg(values, sketch)
    text = agg.wire_text("[", "]")
    reference = json.dumps([agg.to_wire()])
    # same JSON value (repr compares NaN equal to NaN)
    assert repr(json.loads(text)) == repr(json.loads(reference))


@pytest.mark.parametrize(("values", "sketch"), WIRE_CASES)
def test_of_wire_is_an_empty_aggregate_merged_with_the_wire(
    values: list[tuple[float, float]], sketch: bool
) -> None:
    wire = json.loads(json.dumps(_agg(values, sketch).to_wire()))
    slow = Agg(sketch)
    slow.merge_wire(json.loads(json.dumps(wire)))
    fast = Agg.of_wire(wire, sketch)
    assert repr(fast.to_wire()) == repr(slow.to_wire())
    quantile = sketch and all(math.isfinite(v) for v, _ in values)  # DDSketch takes finite values only
    for aggregate in ("mean", "count", "max", "p95") if quantile else ("mean", "count", "max"):
        assert repr(fast.value(aggregate)) == repr(slow.value(aggregate))


def test_a_malformed_entry_rejects_the_whole_partial_before_any_merge() -> None:
    rules = _rules()
    index = RuleIndex.from_rules(rules)
    folder = Folder(index, Router.from_rules(rules))
    for i in range(3):
        folder.fold(
            Score(name="error", score_value=1.0, project_id="p", evaluator_kind="heuristic"),
            T0 + i * 60,
            "0",
            i,
        )
    _key, value = folder.drain()[0]
    body = json.loads(value)
    assert len(body["e"]) >= 2
    for bad in ("60", None, 1.5):
        body["e"][1][2] = bad
        with pytest.raises((TypeError, ValueError)):
            decode_partial(json.dumps(body).encode())
    body["e"][1] = body["e"][1][:4]
    with pytest.raises(ValueError):
        decode_partial(json.dumps(body).encode())
    evaluator = Evaluator(index.by_rule())
    part = decode_partial(value)
    assert evaluator.merge(part.group_key, part.src, part.entries, T0)
    assert not evaluator.merge(part.group_key, part.src, part.entries, T0)  # a replay counts nothing twice


def test_gc_paused_restores_the_collector() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # left off when it was off
    finally:
        gc.enable()


def test_tune_for_alerter_freezes_start_up_objects_and_spaces_full_collections() -> None:
    before = gc.get_threshold()
    try:
        tune_for_alerter()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (before[0], before[1], FULL_COLLECTION_EVERY)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.parametrize(
    "bad",
    [
        {"score_value": math.inf},
        {"score_value": -math.inf},
        {"score_value": math.nan},
        {"score_value": 1.0, "sampling_weight": math.inf},
        {"score_value": 1.0, "sampling_weight": math.nan},
    ],
    ids=["inf", "-inf", "nan", "inf weight", "nan weight"],
)
async def test_non_finite_scores_go_to_the_dlq_and_fold_nothing(bad: dict[str, float]) -> None:
    from spanline.alerter.service import FoldStrategy
    from spanline.core.kafka import InMessage

    rules = _rules()
    strategy = FoldStrategy(Folder(RuleIndex.from_rules(rules), Router.from_rules(rules)), "partials")
    good = Score(name="latency_ms", score_value=2.0, project_id="p", evaluator_kind="heuristic")
    poison = Score(name="latency_ms", project_id="p", evaluator_kind="heuristic", **bad)
    batch = [
        InMessage("scores", 0, i, b"t", s.SerializeToString(), [], int(T0 * 1000))
        for i, s in enumerate([good, poison, good])
    ]
    out = await strategy.process(batch)
    assert [(d.message.offset, d.reason) for d in out.dlq] == [(1, "invalid_score")]
    entries = [e for r in out.records for e in decode_partial(r.value).entries]
    assert entries and all(math.isfinite(x) for e in entries for x in e[1:] if isinstance(x, float))


async def test_a_score_set_folds_like_its_scores_and_its_poison_goes_to_the_dlq() -> None:
    """The scorer sends a trace's scores as one ScoreSet record: each is folded as if sent
    alone; an invalid one is skipped and the record is dead-lettered once."""
    from spanline.alerter.service import FoldStrategy
    from spanline.core.kafka import InMessage
    from spanline.spans.score_records import pack_scores

    rules = _rules()
    good = [
        Score(name="latency_ms", score_value=v, project_id="p", evaluator_kind="heuristic") for v in (2, 4)
    ]
    poison = Score(name="latency_ms", score_value=math.nan, project_id="p", evaluator_kind="heuristic")

    async def partials(values: list[bytes]) -> tuple[list[object], list[object]]:
        strategy = FoldStrategy(Folder(RuleIndex.from_rules(rules), Router.from_rules(rules)), "partials")
        batch = [InMessage("scores", 0, i, b"t", v, [], int(T0 * 1000)) for i, v in enumerate(values)]
        out = await strategy.process(batch)
        entries = [e for r in out.records for e in decode_partial(r.value).entries]
        return entries, [(d.message.offset, d.reason) for d in out.dlq]

    alone, _ = await partials([s.SerializeToString() for s in good])
    together, dlq = await partials([pack_scores([s.SerializeToString() for s in (good[0], poison, good[1])])])
    assert together == alone and alone
    assert dlq == [(0, "invalid_score")]
    _, garbage = await partials([b"\x82\x01\x05\xff"])  # the set's tag, then nothing valid
    assert garbage == [(0, "decode_error")]
