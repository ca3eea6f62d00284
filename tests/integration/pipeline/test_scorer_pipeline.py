"""The pipeline with the scorer in it: ingest -> redactor -> scorer -> writer -> chdb.

Every trace sent gets its deterministic scores in ClickHouse, once each (by score id),
attached to the trace and recording how its window was closed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from spanline.core.broker import free_port
from spanline.loadgen.genai_traces import build_trace_set
from tests.support.kafka import unique_prefix
from tests.support.pipeline import Pipeline

pytestmark = pytest.mark.integration

TRACE_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture
def scored_pipeline(make_settings: Any, tmp_path: Path) -> Iterator[Pipeline]:
    settings = make_settings(writer={"query_port": free_port()}, kafka={"group_prefix": unique_prefix("g")})
    with Pipeline(settings, tmp_path, scorer=True) as p:
        yield p


def test_every_trace_gets_its_deterministic_scores_once(scored_pipeline: Pipeline) -> None:
    p = scored_pipeline
    loadgen = build_trace_set(600, 50, seed=23, plant_pii=False)
    with grpc.insecure_channel(p.otlp_endpoint) as channel:
        call = channel.unary_unary(TRACE_PATH, request_serializer=None, response_deserializer=None)
        for request in loadgen.requests:
            call(request.SerializeToString(), timeout=30)

    p.wait_for("SELECT count() FROM spans", 600)
    traces = p.scalar("SELECT uniqExact(trace_id) FROM spans")
    assert traces > 50
    scored = "SELECT uniqExact(trace_id) FROM scores WHERE evaluator_kind = 'heuristic' AND name = 'error'"
    try:
        p.wait_for(scored, traces, timeout_s=90)
    except AssertionError as exc:
        assert p.scorer is not None
        raise AssertionError(f"{exc}\nscorer log:\n{p.scorer.logs()[-3000:]}") from None
    # 100%: no trace in spans without scores, and no scores for a trace not stored
    missing = p.scalar(
        "SELECT count() FROM (SELECT DISTINCT trace_id FROM spans) AS s "
        "LEFT ANTI JOIN (SELECT DISTINCT trace_id FROM scores WHERE name = 'error') AS c USING trace_id"
    )
    assert missing == 0
    # once each: as many rows as distinct score ids, even without FINAL
    assert p.raw_scalar("SELECT count() - uniqExact(score_id) FROM scores") == 0
    assert p.scalar("SELECT count() FROM scores WHERE name = 'error'") == traces
    # a trace-level score hangs on the root and says how the window was closed
    reasons = dict(
        p.db.query(
            "SELECT attributes['spanline.trace.completion_reason'] AS r, count() FROM scores "
            "WHERE name = 'error' GROUP BY r"
        ).rows
    )
    assert set(reasons) <= {"complete", "no_root"} and sum(reasons.values()) == traces
    on_root = p.scalar(
        "SELECT count() FROM scores AS c INNER JOIN spans AS s "
        "ON c.trace_id = s.trace_id AND c.span_id = s.span_id "
        "WHERE c.name = 'error' AND s.parent_span_id = ''"
    )
    assert on_root == reasons.get("complete", 0)
