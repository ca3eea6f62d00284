"""Real instrumentations against the OpenAI stub: the attribute dialects storage must map.

The expected key sets below are what docs/loadgen.md documents; if an instrumentation
upgrade renames a key, this fails and the table (and the writer's mapping) must follow.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.support.instrumented_spans import (
    PLANTED_CARD,
    PLANTED_EMAIL,
    InstrumentedCapture,
    capture_all,
    strip_openai_wrappers,
)
from tests.support.openai_stub import REASONING_TOKENS, OpenAIStub

EXPECTED_KEYS = {
    "openai-v2": {
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.response.id",
        "gen_ai.response.finish_reasons",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
    },
    "openllmetry": {
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.response.id",
        "gen_ai.response.finish_reasons",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.total_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.reasoning_tokens",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.tool.definitions",
        "gen_ai.is_streaming",
    },
    "openinference": {
        "openinference.span.kind",
        "llm.system",
        "llm.model_name",
        "llm.invocation_parameters",
        "llm.token_count.prompt",
        "llm.token_count.completion",
        "llm.token_count.total",
        "llm.token_count.prompt_details.cache_read",
        "llm.token_count.completion_details.reasoning",
        "input.value",
        "input.mime_type",
        "output.value",
        "output.mime_type",
        "llm.input_messages.0.message.role",
        "llm.input_messages.0.message.content",
        "llm.output_messages.0.message.role",
    },
}
# (model key, input tokens key, output tokens key, content keys)
MODEL_TOKEN_KEYS = {
    "openai-v2": ("gen_ai.response.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"),
    "openllmetry": ("gen_ai.response.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"),
    "openinference": ("llm.model_name", "llm.token_count.prompt", "llm.token_count.completion"),
}


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which) if which else None


def _attrs(span: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in span.attributes}


@pytest.fixture(scope="module")
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub() as s:
        yield s


@pytest.fixture(scope="module")
def captures(stub: OpenAIStub) -> dict[str, InstrumentedCapture]:
    return capture_all(stub)


@pytest.mark.parametrize("name", ["openai-v2", "openllmetry", "openinference"])
def test_llm_spans_carry_model_tokens_and_content(
    name: str, captures: dict[str, InstrumentedCapture], capsys: pytest.CaptureFixture[str]
) -> None:
    capture = captures[name]
    spans = capture.spans()
    assert len(spans) == 3, capture.span_names
    keys: set[str] = set()
    model_key, in_key, out_key = MODEL_TOKEN_KEYS[name]
    for span in spans:
        a = _attrs(span)
        keys |= set(a)
        assert a[model_key] == "gpt-4o-mini-2024-08-06"
        assert a[in_key] > 0 and a[out_key] > 0
    with capsys.disabled():
        print(f"\n[{name} {capture.package_version}] span names={sorted(set(capture.span_names))}")
        print(f"[{name}] span attribute keys: {sorted(keys)}")
        if capture.log_records():
            print(f"[{name}] log event names: {sorted({r.event_name for r in capture.log_records()})}")
    missing = EXPECTED_KEYS[name] - keys
    assert not missing, f"{name} no longer emits {missing}; update docs/loadgen.md and the writer mapping"


@pytest.mark.parametrize("name", ["openai-v2", "openllmetry", "openinference"])
def test_planted_pii_reaches_the_telemetry(name: str, captures: dict[str, InstrumentedCapture]) -> None:
    capture = captures[name]
    wire = capture.traces.SerializeToString() + capture.logs.SerializeToString()
    assert PLANTED_EMAIL.encode() in wire
    assert PLANTED_CARD.encode() in wire
    assert capture.planted == (PLANTED_EMAIL, PLANTED_CARD)


def test_openai_v2_emits_content_events_as_logs(captures: dict[str, InstrumentedCapture]) -> None:
    capture = captures["openai-v2"]
    records = capture.log_records()
    span_ids = {(s.trace_id, s.span_id) for s in capture.spans()}
    assert len(records) == 3
    assert {r.event_name for r in records} == {"gen_ai.client.inference.operation.details"}
    assert {(r.trace_id, r.span_id) for r in records} == span_ids
    # in events the messages are structured AnyValues, not JSON strings as on the span
    first = {kv.key: kv.value for kv in records[0].attributes}
    assert first["gen_ai.input.messages"].WhichOneof("value") == "array_value"


def test_content_formats(captures: dict[str, InstrumentedCapture]) -> None:
    v2 = _attrs(captures["openai-v2"].spans()[0])
    messages = json.loads(v2["gen_ai.input.messages"])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["parts"][0] == {"content": messages[1]["parts"][0]["content"], "type": "text"}
    ll = _attrs(captures["openllmetry"].spans()[0])
    assert json.loads(ll["gen_ai.output.messages"])[0]["parts"][0]["type"] == "tool_call"
    oi = _attrs(captures["openinference"].spans()[0])
    assert json.loads(oi["input.value"])["messages"][1]["role"] == "user"
    assert oi["openinference.span.kind"] == "LLM"


def test_drivers_leave_openai_unpatched(captures: dict[str, InstrumentedCapture]) -> None:
    # OpenLLMetry 0.62's uninstrument leaves wrappers behind; the driver strips them
    assert strip_openai_wrappers() == 0
    assert captures["openai-v2"].leaked_wrappers == 0


def test_stub_answers_tools_usage_and_streams(stub: OpenAIStub) -> None:
    client = openai.OpenAI(base_url=stub.base_url, api_key="x", max_retries=0)
    tools: Any = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    first = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], tools=tools
    )
    assert first.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.tool_calls[0].function.name == "f"  # type: ignore[index, union-attr]
    assert first.usage is not None and first.usage.completion_tokens_details is not None
    assert first.usage.completion_tokens_details.reasoning_tokens == REASONING_TOKENS
    assert first.usage.prompt_tokens_details is not None
    again = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], tools=tools
    )
    assert again.model_dump() == first.model_dump() | {"id": again.id, "created": again.created}

    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "stream please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    plain = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "stream please"}]
    )
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0

    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="error-429", messages=[{"role": "user", "content": "x"}])
    client.close()
