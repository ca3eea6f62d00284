"""Rule state and Alertmanager's notification policy on a virtual clock (pure engine)."""

from __future__ import annotations

from typing import Any

import yaml

from spanline.alerter.engine import Engine
from spanline.alerter.rules import parse_rules
from spanline.alerter.silences import SilenceSet, new_silence
from spanline.v1.spanline_pb2 import Score

T0 = 1_767_600_000.0

BASE = """
version: 1
defaults: {eval_interval: 5s, for: 0s, keep_firing_for: 0s, min_samples: 3, allowed_lateness: 10s}
rules:
  - name: err
    score: error
    aggregate: mean
    window: 30s
    threshold: {op: ">", value: 0.5}
route:
  receiver: team
  group_by: [alertname]
  group_wait: 10s
  group_interval: 60s
  repeat_interval: 600s
receivers:
  - name: team
    console: true
"""


class Sim:
    def __init__(self, text: str = BASE, silences: SilenceSet | None = None, **patch: Any) -> None:
        data = yaml.safe_load(text)
        data.update(patch)
        rules = parse_rules(data)
        self.engine = Engine(rules, silenced=silences.mutes if silences else None)
        self.now = T0
        self.sent: list[tuple[float, str, list[str], list[str]]] = []
        self.transitions: list[tuple[float, str, bool]] = []

    def score(self, name: str, value: float, project: str = "p1", n: int = 1, **attrs: str) -> None:
        for _ in range(n):
            s = Score(name=name, score_value=value, project_id=project, evaluator_kind="heuristic")
            for k, v in attrs.items():
                s.attributes[k] = v
            self.engine.fold_local(s, self.now, self.now)

    def advance(self, seconds: float, *, errors: float | None = None, project: str = "p1") -> None:
        end = self.now + seconds
        step = self.engine.eval_interval_s
        while self.now < end:
            self.now += step
            if errors is not None:
                self.score("error", errors, project, n=3)
            for tr in self.engine.evaluate(self.now):
                self.transitions.append((self.now - T0, tr.labels.get("project", ""), tr.firing))
            for job in self.engine.due(self.now):
                delivered: dict[str, dict[str, str] | None] = {}
                for note in job.notifications:
                    delivered[note.nflog_key] = {}
                    if note.send:
                        self.sent.append(
                            (
                                self.now - T0,
                                note.status,
                                sorted(a.labels.get("project", "") for a in note.firing),
                                sorted(a.labels.get("project", "") for a in note.resolved),
                            )
                        )
                self.engine.dispatcher.complete(job, delivered, self.now)


def test_fire_refire_join_resolve_refire() -> None:
    sim = Sim()
    sim.advance(30, errors=1.0)
    assert [s[1:] for s in sim.sent] == [("firing", ["p1"], [])]
    first_at = sim.sent[0][0]
    assert 10 <= first_at <= 20  # group_wait 10s after the first firing
    sim.advance(40, errors=1.0)  # still firing: no new notification before group_interval / repeat
    assert len(sim.sent) == 1
    # a second project joins the same group (group_by alertname): notified at the next group_interval tick
    for _ in range(12):
        sim.score("error", 1.0, "p2", n=3)
        sim.advance(5, errors=1.0)
    assert sim.sent[-1][1:] == ("firing", ["p1", "p2"], [])
    assert sim.sent[-1][0] - first_at == 60
    # both resolve
    sim.advance(120, errors=0.0)
    for p in ("p2",):
        sim.score("error", 0.0, p, n=30)
    sim.advance(120, errors=0.0)
    assert sim.sent[-1][1] == "resolved"
    n = len(sim.sent)
    sim.advance(120, errors=0.0)
    assert len(sim.sent) == n  # nothing more once resolved was sent
    sim.advance(60, errors=1.0)  # re-fire after resolve: a new first notification
    assert sim.sent[-1][1:] == ("firing", ["p1"], [])


def test_flap_inside_group_wait_sends_nothing() -> None:
    text = BASE.replace("group_wait: 10s", "group_wait: 40s")
    sim = Sim(text)
    sim.advance(10, errors=1.0)
    assert sim.transitions and sim.transitions[0][2] is True
    sim.advance(30, errors=0.0)
    assert any(t[2] is False for t in sim.transitions)
    sim.advance(120, errors=0.0)
    assert sim.sent == []


def test_repeat_after_repeat_interval() -> None:
    text = BASE.replace("repeat_interval: 600s", "repeat_interval: 120s")
    sim = Sim(text)
    sim.advance(200, errors=1.0)
    times = [s[0] for s in sim.sent]
    # first at group_wait; repeats only on group_interval ticks once repeat_interval has passed
    assert len(times) == 2 and times[1] - times[0] == 180


def test_min_samples_not_met_never_fires() -> None:
    sim = Sim()
    for _ in range(20):
        sim.score("error", 1.0, n=1)
        sim.advance(15)  # 2 samples per 30 s window < min_samples 3
    assert sim.sent == [] and sim.transitions == []


def test_insufficient_data_never_resolves() -> None:
    sim = Sim()
    sim.advance(30, errors=1.0)
    assert sim.sent and sim.sent[-1][1] == "firing"
    sim.advance(600)  # no data at all: keep_state
    assert all(t[2] for t in sim.transitions)
    assert sim.sent[-1][1] == "firing"


def test_inhibition_mutes_target_with_equal_labels() -> None:
    data = yaml.safe_load(BASE)
    data["rules"].append(
        {
            "name": "err-critical",
            "score": "error",
            "aggregate": "mean",
            "window": "30s",
            "threshold": {"op": ">", "value": 0.9},
            "labels": {"severity": "critical"},
        }
    )
    data["inhibit_rules"] = [
        {
            "source_matchers": {"severity": "critical"},
            "target_matchers": {"severity": "warning"},
            "equal": ["project"],
        }
    ]
    sim = Sim(yaml.safe_dump(data))
    sim.advance(30, errors=1.0)
    names = [s for s in sim.sent]
    assert len(names) == 1  # only the critical group is notified; the warning one is inhibited
    group_keys = list(sim.engine.dispatcher.nflog)
    assert len(group_keys) == 1 and "err-critical" in group_keys[0]


def test_silence_mutes_at_send_time() -> None:
    silences = SilenceSet()
    silence = new_silence(["project=p1"], T0, 3600, "maintenance", "test")
    silences.apply(silence.to_wire(), silence.id.encode())
    sim = Sim(silences=silences)
    sim.advance(60, errors=1.0)
    assert sim.transitions and sim.sent == []
    expired = new_silence(["project=p1"], T0, 1, "", "")
    silences.by_id = {expired.id: expired}
    sim.advance(60, errors=1.0)
    assert sim.sent and sim.sent[0][1] == "firing"


def test_change_vs_small_baseline_needs_abs_delta() -> None:
    text = """
version: 1
defaults: {eval_interval: 10s, for: 0s, keep_firing_for: 0s, min_samples: 1, allowed_lateness: 0s}
rules:
  - name: cost
    score: cost_usd
    aggregate: sum
    window: 1m
    change: {pct: 100, min_abs_delta: 5, min_baseline: 1, baseline: offset, offset: 10m,
             fallback_offsets: [], bucket: 1m}
route: {receiver: team, group_wait: 0s}
receivers: [{name: team, console: true}]
"""
    sim = Sim(text)
    # 10 minutes of a tiny baseline: 0.01 USD per minute
    for _ in range(60):
        sim.score("cost_usd", 0.001)
        sim.advance(10)
    # now 3 USD per minute: +29,900% against the raw baseline, but delta < min_abs_delta 5
    for _ in range(6):
        sim.score("cost_usd", 0.5)
        sim.advance(10)
    assert sim.transitions == []
    # 20 USD in the window: delta >= 5 and >= 100% of max(baseline, min_baseline)
    for _ in range(6):
        sim.score("cost_usd", 3.0)
        sim.advance(10)
    assert sim.transitions and sim.transitions[-1][2] is True


def test_judge_scores_weighted_and_min_samples_counts_judged() -> None:
    text = """
version: 1
defaults: {eval_interval: 10s, for: 0s, keep_firing_for: 0s, allowed_lateness: 0s}
rules:
  - name: judge
    score: "*"
    evaluator_kind: llm_judge
    aggregate: mean
    window: 1m
    min_samples: 4
    threshold: {op: "<", value: 0.5}
"""
    sim = Sim(text)
    engine = sim.engine
    # 1 failing judged trace with weight 10 and 3 passing with weight 1: weighted mean 3/13 < 0.5
    for value, weight in ((0.0, 10.0), (1.0, 1.0), (1.0, 1.0)):
        s = Score(
            name="helpful",
            score_value=value,
            score_label="pass" if value else "fail",
            project_id="p",
            evaluator_kind="llm_judge",
            sampling_weight=weight,
        )
        engine.fold_local(s, sim.now, sim.now)
    # judge errors (value 0, no label, error.type set) are not verdicts: neither a failure nor a sample
    for _ in range(5):
        err = Score(name="helpful", score_value=0.0, project_id="p", evaluator_kind="llm_judge")
        err.attributes["error.type"] = "timeout"
        engine.fold_local(err, sim.now, sim.now)
    sim.advance(10)
    assert sim.transitions == []  # 3 judged traces < min_samples 4
    s = Score(
        name="helpful",
        score_value=1.0,
        score_label="pass",
        project_id="p",
        evaluator_kind="llm_judge",
        sampling_weight=1.0,
    )
    engine.fold_local(s, sim.now, sim.now)
    sim.advance(10)
    assert sim.transitions and sim.transitions[0][2] is True
    series = next(iter(next(iter(engine.evaluator.groups.values())).series.values()))
    assert abs((series.last.value or 0) - 3 / 13) < 1e-9
    # a heuristic score of the same name is not part of a judge rule
    assert engine.index.matching(Score(name="helpful", evaluator_kind="heuristic")) == []


def test_p95_from_sketch() -> None:
    text = """
version: 1
defaults: {eval_interval: 10s, for: 0s, min_samples: 10, allowed_lateness: 0s}
rules:
  - name: lat
    score: latency_ms
    aggregate: p95
    window: 1m
    threshold: {op: ">", value: 900}
"""
    sim = Sim(text)
    for i in range(1, 1001):
        sim.score("latency_ms", float(i))
    sim.advance(10)
    series = next(iter(next(iter(sim.engine.evaluator.groups.values())).series.values()))
    assert abs((series.last.value or 0) - 950) / 950 < 0.02
    assert sim.transitions and sim.transitions[0][2] is True
