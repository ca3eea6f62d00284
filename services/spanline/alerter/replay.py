"""``spanline alerts test``: run rules over a recorded score file with a virtual clock.

Score file format (JSON lines, one score per line; blank lines and lines starting with
``#`` are skipped)::

    {"time": "2026-01-05T10:00:00Z", "name": "error", "value": 1, "project": "shop"}
    {"time": 1767607200.5, "name": "helpfulness", "value": 0.8, "evaluator_kind": "llm_judge",
     "sampling_weight": 4, "label": "pass", "attributes": {"model": "gpt-4o"}}

``time`` is RFC 3339 or Unix seconds (required); ``name`` required; ``value`` defaults
to 0; ``project`` to ``default``; ``evaluator_kind`` to ``heuristic``;
``sampling_weight`` to 1; ``label`` and ``attributes`` are optional, except that an
``llm_judge`` score without a label is a judge error (the scorer's contract) and no rule
counts it. The clock starts at
the first score and ticks every ``eval_interval`` until the last score plus ``--tail``;
scores are folded when the clock reaches their time. Notifications are never sent: they
are printed, with what Alertmanager's policy would have done.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from spanline.alerter.dispatch import Alert
from spanline.alerter.engine import Engine
from spanline.alerter.rules import RulesFile
from spanline.v1.spanline_pb2 import Score


class ScoreFileError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    kind: str  # fired | resolved | notified
    text: str


def _time(value: object, where: str) -> float:
    if isinstance(value, bool) or value is None:
        raise ScoreFileError(f"{where}: 'time' is required (RFC 3339 or Unix seconds)")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise ScoreFileError(f"{where}: 'time' must be RFC 3339 or Unix seconds")


def read_scores(path: Path) -> list[tuple[float, Score]]:
    out: list[tuple[float, Score]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ScoreFileError(f"cannot read score file {path}: {exc.strerror}") from None
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(text)
        except json.JSONDecodeError:
            raise ScoreFileError(f"{where}: not a JSON object") from None
        if not isinstance(row, dict):
            raise ScoreFileError(f"{where}: not a JSON object")
        unknown = set(row) - {
            "time",
            "name",
            "value",
            "label",
            "project",
            "evaluator_kind",
            "sampling_weight",
            "attributes",
            "trace_id",
        }
        if unknown:
            raise ScoreFileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        if not isinstance(row.get("name"), str) or not row["name"]:
            raise ScoreFileError(f"{where}: 'name' is required")
        t = _time(row.get("time"), where)
        try:
            score = Score(
                name=row["name"],
                score_value=float(row.get("value", 0.0)),
                score_label=str(row.get("label", "")),
                project_id=str(row.get("project", "default")),
                evaluator_kind=str(row.get("evaluator_kind", "heuristic")),
                sampling_weight=float(row.get("sampling_weight", 1.0)),
                time_unix_nano=int(t * 1e9),
                attributes={str(k): str(v) for k, v in dict(row.get("attributes", {})).items()},
            )
        except (TypeError, ValueError):
            raise ScoreFileError(f"{where}: a field has the wrong type") from None
        out.append((t, score))
    out.sort(key=lambda item: item[0])
    return out


def _alert_text(a: Alert) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(a.labels.items()) if k != "alertname")
    return f"{a.rule}{{{labels}}}"


def simulate(rules: RulesFile, scores: list[tuple[float, Score]], tail_s: float) -> Iterator[Event]:
    engine = Engine(rules)
    if not scores:
        return
    step = engine.eval_interval_s
    now = scores[0][0]
    end = scores[-1][0] + tail_s
    i = 0
    while now <= end:
        while i < len(scores) and scores[i][0] <= now:
            engine.fold_local(scores[i][1], scores[i][0], now)
            i += 1
        for tr in engine.evaluate(now):
            labels = ",".join(f"{k}={v}" for k, v in sorted(tr.labels.items()) if k != "alertname")
            kind = "fired" if tr.firing else "resolved"
            value = "" if tr.value != tr.value else f" value={tr.value:.4g}"
            yield Event(now, kind, f"{tr.rule}{{{labels}}}{value}  {tr.annotations.get('summary', '')}")
        for job in engine.due(now):
            delivered: dict[str, dict[str, str] | None] = {}
            for note in job.notifications:
                delivered[note.nflog_key] = {}
                if not note.send:
                    continue
                firing = " ".join(_alert_text(a) for a in note.firing)
                resolved = " ".join(_alert_text(a) for a in note.resolved)
                yield Event(
                    now,
                    "notified",
                    f"{note.integration.id} {note.status} firing=[{firing}] resolved=[{resolved}]",
                )
            engine.dispatcher.complete(job, delivered, now)
        now += step


def print_events(events: Iterator[Event], start: float | None, out: IO[str]) -> dict[str, int]:
    counts = {"fired": 0, "resolved": 0, "notified": 0}
    for ev in events:
        if start is None:
            start = ev.at
        rel = int(ev.at - start)
        stamp = datetime.fromtimestamp(ev.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        print(
            f"{stamp} +{rel // 3600:02d}:{rel % 3600 // 60:02d}:{rel % 60:02d}  {ev.kind:<9} {ev.text}",
            file=out,
        )
        counts[ev.kind] += 1
    return counts
