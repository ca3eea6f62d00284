"""Verdict parsing: strict objects pass, anything else is InvalidOutput (never a default)."""

from __future__ import annotations

import json

import pytest

from spanline.scorer.judging.evaluators import load_evaluators
from spanline.scorer.judging.output import InvalidOutput, parse_verdict
from spanline.scorer.judging.prompt import build_prompt, trace_content
from tests.support.judge_traces import chat_trace


def test_valid_object() -> None:
    v = parse_verdict('{"explanation": "ok", "verdict": "FAIL", "injection_suspected": false}')
    assert (v.verdict, v.passed, v.explanation) == ("fail", False, "ok")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("pass", "not_json"),
        ('{"explanation": "cut', "not_json"),
        ("[1, 2]", "not_object"),
        ('{"explanation": "x", "verdict": "mostly"}', "schema:verdict"),
        ('{"explanation": 3, "verdict": "pass"}', "schema:explanation"),
        (
            '{"verdict": "pass", "injection_suspected": "yes", "explanation": "x"}',
            "schema:injection_suspected",
        ),
    ],
)
def test_invalid_replies(text: str, reason: str) -> None:
    with pytest.raises(InvalidOutput) as err:
        parse_verdict(text)
    assert err.value.reason == reason


def test_extraction_only_in_text_mode() -> None:
    reply = 'Here you go:\n```json\n{"explanation": "a {b} c", "verdict": "pass"}\n```'
    with pytest.raises(InvalidOutput):
        parse_verdict(reply)
    assert parse_verdict(reply, extract=True).verdict == "pass"
    assert (
        parse_verdict('I think {"verdict": "fail", "explanation": "no"} done', extract=True).verdict == "fail"
    )


def test_long_content_is_cut_with_a_marker_keeping_every_part() -> None:
    trace = chat_trace(1, question="short question?", answer="x" * 50_000)
    text, cut = trace_content(trace, ("input", "tool_calls", "output"), 4_000)
    data = json.loads(text)
    assert len(text) < 4_600 and cut > 45_000
    assert "short question?" in json.dumps(data["input"])  # the long answer did not crowd it out
    assert data["tool_calls"][0]["tool"] == "lookup_order"
    assert "[truncated" in data["output"]


def test_nonces_differ_and_evaluator_inputs_decide_what_is_sent() -> None:
    ev = load_evaluators()[0]  # answers_question: input + output only
    a, b = build_prompt(ev, chat_trace(1), 10_000), build_prompt(ev, chat_trace(1), 10_000)
    assert a.nonce != b.nonce
    assert "lookup_order" not in a.messages[1]["content"]
