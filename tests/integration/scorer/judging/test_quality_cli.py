"""`spanline quality` on chdb: judge scores and sampling records in, weighted estimate out."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spanline.query.endpoint import QueryEndpoint
from spanline.scorer.commands import run_quality
from spanline.scorer.judging.config import JudgeSettings
from spanline.scorer.judging.evaluators import Evaluator
from spanline.scorer.judging.records import judge_score, sampling_record
from spanline.scorer.judging.sampling import SamplingPolicy
from spanline.spans.rows import ScoreRows
from spanline.v1.spanline_pb2 import Score
from spanline.writer.store import ClickHouseStore, RetryPolicy, connect
from tests.support.judge_traces import chat_trace

pytestmark = pytest.mark.integration

EV = Evaluator(
    name="answers_question", version="1", failure_mode="does not answer", rubric="fail if it does not answer",
    inputs=("input", "output"),
)  # fmt: skip
DB = "quality_t"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    path = tmp_path_factory.mktemp("chdb") / "clickhouse"
    dsn = f"chdb://{path}"
    store = ClickHouseStore(connect(dsn), DB, dsn=dsn, retry=RetryPolicy(1, 0.01, 0.01))
    store.migrate(hot_days=7)
    scores = _scores()
    for _ in range(2):  # a replay inserts every row again: ids dedupe it
        rows = ScoreRows()
        for s in scores:
            rows.add(s, s.project_id, time.time_ns())
        store.insert("scores", rows.take())
    # the query endpoint a running pipeline serves: chdb allows one process per directory
    endpoint = QueryEndpoint(connect(dsn, readonly=True, database=DB), DB, port=0)
    endpoint.start()
    yield endpoint.port
    endpoint.stop()
    store.close()


EXPECTED: dict[str, float] = {}


def _scores() -> list[Score]:
    """1000 bulk traces at 10% plus 60 error traces at 100%; verdicts fixed by trace number."""
    policy = SamplingPolicy(JudgeSettings(sample_rate=0.1))
    out: list[Score] = []
    judged = {"bulk": [0, 0], "tail": [0, 0]}  # passes, judged
    population = {"bulk": 0, "tail": 0}
    for n in range(1, 1061):
        error = n > 1000
        trace = chat_trace(n, error=error)
        d = policy.decide(trace)
        out.append(sampling_record(trace, d))
        kind = "tail" if error else "bulk"
        population[kind] += 1
        if not d.sampled:
            continue
        if n % 17 == 0:  # judge errors: nonresponse, no verdict
            out.append(judge_score(trace, EV, d, passed=None, error_type="timeout"))
            continue
        passed = (n % 10 != 0) if not error else (n % 5 < 2)
        judged[kind][0] += passed
        judged[kind][1] += 1
        out.append(judge_score(trace, EV, d, passed=passed, explanation="x"))
    total = population["bulk"] + population["tail"]
    weighted = sum(population[k] / total * judged[k][0] / judged[k][1] for k in judged)
    naive = (judged["bulk"][0] + judged["tail"][0]) / (judged["bulk"][1] + judged["tail"][1])
    EXPECTED.update(weighted=weighted, naive=naive, judged=judged["bulk"][1] + judged["tail"][1])
    return out


def _env(monkeypatch: pytest.MonkeyPatch, port: int, tmp_path: Path) -> None:
    monkeypatch.setenv("SPANLINE_WRITER_CLICKHOUSE_DSN", f"chdb://{tmp_path}/unused")
    monkeypatch.setenv("SPANLINE_WRITER_DATABASE", DB)
    monkeypatch.setenv("SPANLINE_WRITER_QUERY_PORT", str(port))


def test_quality_json_is_the_weighted_estimate(
    served: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch, served, tmp_path)
    assert run_quality(None, since="1h", fmt="json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["window_s"] == 3600
    [row] = doc["estimates"]
    assert (row["project"], row["evaluator"], row["version"]) == ("p1", "answers_question", "1")
    assert row["population"] == 1060  # every trace once, despite the replayed insert
    assert row["n_judged"] == EXPECTED["judged"] and row["judge_errors"] > 0
    assert row["pass_rate"] == pytest.approx(EXPECTED["weighted"])
    assert abs(row["pass_rate"] - EXPECTED["naive"]) > 0.05  # the naive mean would be wrong
    low, high = row["ci95"]
    assert low < row["pass_rate"] < high and 0 < high - low < 0.3
    assert row["n_eff"] > 0 and isinstance(row["low_precision"], bool)
    assert "naive" not in json.dumps(doc) and "unweighted" not in json.dumps(doc)


def test_quality_table_and_filters(
    served: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch, served, tmp_path)
    assert run_quality(None, since="1d", project="p1") == 0
    out = capsys.readouterr().out
    assert "pass rate (weighted)" in out and "answers_question" in out
    assert f"{100 * EXPECTED['weighted']:.1f}%" in out
    assert run_quality(None, since="1h", project="nobody") == 0
    assert "no judge scores" in capsys.readouterr().out
    assert run_quality(None, since="yesterday") == 1
    assert "--since" in capsys.readouterr().err
    assert run_quality(None, project="x'; DROP TABLE scores") == 1
