"""Spans as the real openai-v2, OpenLLMetry and OpenInference instrumentations emit them
land with model, tokens, cost and content in the typed columns (chdb)."""

from __future__ import annotations

import json
import time

import pytest

from spanline.spans.pricing import PricingTable
from spanline.spans.rows import LogRows, SpanRows
from spanline.writer.store import ClickHouseStore
from tests.support.instrumented_spans import PLANTED_EMAIL, capture_all
from tests.support.openai_stub import OpenAIStub

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def captures():  # type: ignore[no-untyped-def]
    with OpenAIStub() as stub:
        return capture_all(stub)


def test_three_instrumentations_land_in_typed_columns(store: ClickHouseStore, captures) -> None:  # type: ignore[no-untyped-def]
    pricing = PricingTable.load()
    spans, logs = SpanRows(pricing), LogRows()
    now = time.time_ns()
    for name, capture in captures.items():
        spans.add(capture.traces, name, now)
        logs.add(capture.logs, name, now)
    store.insert("spans", spans.take())
    store.insert("logs", logs.take())
    c, db = store.client, store.database
    rows = c.query(
        f"SELECT project_id, operation, provider, response_model, input_tokens, output_tokens, total_tokens, "
        f"cost_usd, finish_reasons, input_messages, output_messages, attributes FROM {db}.spans FINAL "
        "ORDER BY project_id, start_time"
    ).result_rows
    by_project: dict[str, list[tuple]] = {}  # type: ignore[type-arg]
    for row in rows:
        by_project.setdefault(row[0], []).append(row)
    assert set(by_project) == {"openai-v2", "openllmetry", "openinference"}
    for project, project_rows in by_project.items():
        assert len(project_rows) == 3, project
        first = project_rows[0]
        _, operation, provider, model, inp, out, total, cost, reasons, in_msgs, out_msgs, attrs = first
        assert (operation, provider) == ("chat", "openai"), project
        assert model.startswith("gpt-4o-mini"), project
        assert inp and out and total == inp + out, project
        assert cost == pytest.approx(pricing.cost("openai", model, inp, out, None, None) or -1, rel=0.5), (
            project
        )
        assert reasons and reasons[0].startswith("tool_call"), project
        assert PLANTED_EMAIL in in_msgs, project  # this test feeds unredacted spans on purpose
        assert "lookup_order" in out_msgs, project
        assert json.loads(in_msgs), project
        # content is stored once, in its column, not again in the map
        assert not any(PLANTED_EMAIL in v for v in attrs.values()), project
    log_rows = c.query(f"SELECT project_id, event_name, body, attributes FROM {db}.logs FINAL").result_rows
    assert log_rows and all(r[0] == "openai-v2" for r in log_rows)
    assert all(
        r[1] == "gen_ai.client.inference.operation.details" and "gen_ai.input.messages" in r[2]
        for r in log_rows
    )
    assert not any("gen_ai.input.messages" in r[3] for r in log_rows)
