from __future__ import annotations

import json

from spanline.query.formatting import clip, format_result
from spanline.query.readonly import QueryResult
from spanline.query.trace_view import (
    TraceView,
    annotate_scores,
    normalize_trace_id,
    render_trace,
    trace_json,
)
from spanline.spans.object_store import LocalObjectStore, PayloadOffloader

T0 = 1_763_000_000_000_000_000


def _span(
    span_id: str, parent: str, name: str, start_ms: float, dur_ms: float, **extra: object
) -> dict[str, object]:
    base: dict[str, object] = {
        "project_id": "p",
        "trace_id": "ab" * 16,
        "span_id": span_id,
        "parent_span_id": parent,
        "service_name": "app",
        "name": name,
        "kind": "INTERNAL",
        "start_ns": T0 + int(start_ms * 1e6),
        "end_ns": T0 + int((start_ms + dur_ms) * 1e6),
        "duration_ns": int(dur_ms * 1e6),
        "status_code": "UNSET",
        "status_message": "",
        "provider": "",
        "request_model": "",
        "response_model": "",
        "input_tokens": None,
        "output_tokens": None,
        "cached_input_tokens": None,
        "cost_usd": None,
        "input_messages": "",
        "output_messages": "",
        "system_instructions": "",
        "tool_arguments": "",
        "tool_result": "",
    }
    base.update(extra)
    return base


def _view() -> TraceView:
    return TraceView(
        "ab" * 16,
        [
            _span("01" * 8, "", "agent", 0, 2000),
            _span(
                "02" * 8,
                "01" * 8,
                "chat",
                5,
                900,
                provider="openai",
                response_model="gpt-4o",
                input_tokens=10,
                output_tokens=5,
                cost_usd=0.0123,
            ),
            _span("03" * 8, "02" * 8, "tool", 20, 100, status_code="ERROR", status_message="boom"),
            _span("04" * 8, "01" * 8, "last", 1000, 10),
            _span("05" * 8, "ff" * 8, "orphan", 1500, 1),
        ],
        [
            {
                "score_id": "s",
                "span_id": "",
                "name": "relevance",
                "score_value": 0.9,
                "score_label": "ok",
                "explanation": "fine",
                "evaluator_kind": "llm_judge",
                "sampling_reason": "",
                "sampling_weight": 1.0,
                "time_ns": T0,
            }
        ],
    )


def test_render_trace_tree_and_summary() -> None:
    text = render_trace(_view())
    lines = text.splitlines()
    assert lines[0].startswith("trace " + "ab" * 16) and "5 spans" in lines[0] and "cost $0.0123" in lines[0]
    assert "1 error" in lines[0]
    body = "\n".join(lines)
    assert "├─ chat" in body and "│  └─ tool" in body and "└─ last" in body
    assert "openai/gpt-4o" in body and "10→5" in body and "ERROR: boom" in body
    assert "+1.00s" in body or "+1000ms" in body
    # orphan (parent not stored) is shown as its own root, not lost
    assert any(line.startswith("orphan") for line in lines)
    assert "trace scores" in body and "relevance" in body


def test_scores_split_into_trace_and_span_levels_with_weighing_facts() -> None:
    view = _view()
    judged = {
        "score_id": "j",
        "span_id": "01" * 8,
        "name": "groundedness",
        "score_value": 0.0,
        "score_label": "",
        "explanation": "",
        "evaluator_kind": "llm_judge",
        "sampling_reason": "bulk",
        "sampling_weight": 20.0,
        "time_ns": T0,
        "attributes": [  # a Map as key/value pairs, as some clients return it
            ("spanline.evaluation.version", "3"),
            ("spanline.trace.completion_reason", "max_age"),
            ("spanline.sampling.probability", "0.05"),
            ("error.type", "timeout"),
        ],
    }
    on_tool = {**view.scores[0], "score_id": "t", "span_id": "03" * 8, "name": "tool_ok", "score_value": 1.0}
    view.scores = annotate_scores(view.spans, [on_tool, judged, view.scores[0]])
    assert [(sc["name"], sc["level"]) for sc in view.scores] == [
        ("groundedness", "trace"),
        ("relevance", "trace"),
        ("tool_ok", "span"),
    ]
    g = view.scores[0]
    assert g["span_name"] == "agent" and g["evaluator_version"] == "3" and g["close_reason"] == "max_age"
    assert g["inclusion_probability"] == 0.05 and g["error_type"] == "timeout"
    text = render_trace(view)
    trace_part, span_part = text.split("\nspan scores\n")
    assert "groundedness" in trace_part and "error: timeout" in trace_part and "20 (p=0.05)" in trace_part
    assert "max_age" in trace_part and "tool_ok" not in trace_part
    assert span_part.splitlines()[2].startswith("tool ") and "tool_ok" in span_part


def test_trace_json_depth_and_inlined_payload(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = LocalObjectStore(tmp_path)
    ref, _ = PayloadOffloader(store, 1024).offload("z" * 5000)
    view = _view()
    view.spans[1]["input_messages"] = ref
    doc = trace_json(view, store)
    assert [s["depth"] for s in doc["spans"]] == [0, 1, 2, 1, 0]
    assert doc["spans"][1]["input_messages"] == "z" * 5000
    assert doc["duration_ns"] == 2_000_000_000
    json.dumps(doc)


def test_normalize_trace_id() -> None:
    assert normalize_trace_id("0x" + "AB" * 16) == "ab" * 16
    for bad in ("xyz", "ab" * 15, "ab" * 16 + "' OR 1=1 --"):
        try:
            normalize_trace_id(bad)
        except Exception as exc:
            assert "trace id" in str(exc)
        else:
            raise AssertionError(bad)


def test_format_result_table_csv_json() -> None:
    result = QueryResult(
        ["name", "n", "m"],
        ["String", "UInt64", "Map(String, String)"],
        [["a\nb", 3, {"k": "v"}], ["long" * 30, None, {}]],
    )
    table = format_result(result, "table")
    lines = table.splitlines()
    assert lines[0].split() == ["name", "n", "m"] and "(2 rows)" in lines[-1]
    assert "a b" in table and "…" in table and "NULL" in table
    # numeric column right-aligned: "3" and "NULL" end in the same column
    assert lines[2].index(" 3 ") + 2 == lines[3].index("NULL") + 4
    assert format_result(result, "csv").splitlines()[0] == "name,n,m"
    assert json.loads(format_result(result, "json"))[0] == {"name": "a\nb", "n": 3, "m": {"k": "v"}}
    assert clip("日本語テキスト", 6) == "日本…"
