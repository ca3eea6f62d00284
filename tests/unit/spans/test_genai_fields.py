from __future__ import annotations

import json

from spanline.spans.genai_fields import (
    CONV_OPENINFERENCE,
    CONV_OPENLLMETRY,
    CONV_OTEL,
    GenAIFields,
    extract_genai,
    take_event_payloads,
    unflatten,
)


def test_otel_genai_semconv() -> None:
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "OpenAI",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 20,
        "gen_ai.usage.cache_read.input_tokens": 40,
        "gen_ai.usage.reasoning.output_tokens": 5,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.conversation.id": "conv-1",
        "gen_ai.agent.name": "planner",
        "gen_ai.agent.id": "agent-7",
        "gen_ai.server.time_to_first_token": 0.25,
        "gen_ai.input.messages": '[{"role":"user","parts":[]}]',
        "gen_ai.output.messages": [{"role": "assistant"}],
        "gen_ai.system_instructions": "be brief",
        "server.address": "api.openai.com",
    }
    f = extract_genai(attrs)
    assert f.convention == CONV_OTEL
    assert (f.operation, f.provider, f.request_model, f.response_model) == (
        "chat",
        "openai",
        "gpt-4o",
        "gpt-4o-2024-08-06",
    )
    assert (f.input_tokens, f.output_tokens, f.cached_input_tokens, f.reasoning_tokens) == (100, 20, 40, 5)
    assert f.total_tokens == 120
    assert f.finish_reasons == ["stop"]
    assert f.ttft_ms == 250.0
    assert (f.conversation_id, f.agent_name, f.agent_id) == ("conv-1", "planner", "agent-7")
    assert f.input_messages == '[{"role":"user","parts":[]}]'
    assert json.loads(f.output_messages) == [{"role": "assistant"}]
    assert f.system_instructions == "be brief"
    # payloads moved out of the map, everything else kept
    assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs
    assert attrs["gen_ai.request.model"] == "gpt-4o" and attrs["server.address"] == "api.openai.com"


def test_otel_legacy_system_and_tool_span() -> None:
    attrs = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.system": "anthropic",
        "gen_ai.tool.name": "search",
        "gen_ai.tool.call.id": "call_1",
        "gen_ai.tool.call.arguments": '{"q": "x"}',
        "gen_ai.tool.call.result": "found",
    }
    f = extract_genai(attrs)
    assert f.provider == "anthropic"
    assert (f.tool_name, f.tool_call_id, f.tool_arguments, f.tool_result) == (
        "search",
        "call_1",
        '{"q": "x"}',
        "found",
    )
    assert not any(k.startswith("gen_ai.tool.call.a") or k.endswith("result") for k in attrs)


def test_openinference_llm_span_reassembles_messages() -> None:
    attrs = {
        "openinference.span.kind": "LLM",
        "llm.system": "openai",
        "llm.model_name": "gpt-4o-mini-2024-07-18",
        "llm.token_count.prompt": "72",
        "llm.token_count.completion": 34,
        "llm.token_count.total": 106,
        "llm.token_count.prompt_details.cache_read": 32,
        "llm.token_count.completion_details.reasoning": 16,
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "sys",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.content": "hi",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"a":1}',
        "llm.finish_reason": "tool_calls",
        "input.value": '{"model": "gpt-4o-mini", "messages": []}',
        "output.value": '{"id": "x"}',
        "session.id": "s-1",
        "user.id": "u-1",
    }
    f = extract_genai(attrs)
    assert f.convention == CONV_OPENINFERENCE
    assert f.operation == "chat" and f.span_kind == "LLM" and f.provider == "openai"
    assert f.request_model == f.response_model == "gpt-4o-mini-2024-07-18"
    assert (f.input_tokens, f.output_tokens, f.total_tokens) == (72, 34, 106)
    assert (f.cached_input_tokens, f.reasoning_tokens) == (32, 16)
    assert json.loads(f.input_messages) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
    ]
    assert json.loads(f.output_messages) == [
        {
            "role": "assistant",
            "tool_calls": [{"id": "call_1", "function": {"name": "lookup", "arguments": '{"a":1}'}}],
        }
    ]
    assert f.finish_reasons == ["tool_calls"]
    assert (f.conversation_id, f.user_id) == ("s-1", "u-1")
    assert not any(k.startswith("llm.input_messages") or k.startswith("llm.output_messages") for k in attrs)
    # the raw request/response duplicates are not kept next to the reassembled messages
    assert "input.value" not in attrs and "output.value" not in attrs
    assert attrs["llm.model_name"] == "gpt-4o-mini-2024-07-18"


def test_openinference_tool_and_chain_spans() -> None:
    tool = {"openinference.span.kind": "TOOL", "tool.name": "calc", "input.value": "1+1", "output.value": "2"}
    f = extract_genai(tool)
    assert (f.operation, f.tool_name, f.tool_arguments, f.tool_result) == ("execute_tool", "calc", "1+1", "2")
    assert f.input_messages == ""
    chain = {"openinference.span.kind": "CHAIN", "input.value": "question", "output.value": "answer"}
    g = extract_genai(chain)
    assert (g.operation, g.span_kind, g.input_messages, g.output_messages) == (
        "",
        "CHAIN",
        "question",
        "answer",
    )
    assert chain == {"openinference.span.kind": "CHAIN"}


def test_openllmetry_flattened_prompts() -> None:
    attrs = {
        "llm.request.type": "chat",
        "gen_ai.system": "OpenAI",
        "gen_ai.request.model": "gpt-4",
        "gen_ai.response.model": "gpt-4-0613",
        "gen_ai.usage.prompt_tokens": 11,
        "gen_ai.usage.completion_tokens": 7,
        "llm.usage.total_tokens": 18,
        "gen_ai.usage.cache_read_input_tokens": 3,
        "gen_ai.usage.reasoning_tokens": 2,
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "hello",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "hi!",
        "gen_ai.completion.0.finish_reason": "stop",
        "gen_ai.completion.0.tool_calls.0.name": "f",
        "traceloop.association.properties.session_id": "sess",
        "traceloop.association.properties.user_id": "user",
    }
    f = extract_genai(attrs)
    assert f.convention == CONV_OPENLLMETRY
    assert (f.operation, f.provider, f.response_model) == ("chat", "openai", "gpt-4-0613")
    assert (f.input_tokens, f.output_tokens, f.total_tokens) == (11, 7, 18)
    assert (f.cached_input_tokens, f.reasoning_tokens) == (3, 2)
    assert json.loads(f.input_messages) == [{"role": "user", "content": "hello"}]
    assert json.loads(f.output_messages) == [
        {"role": "assistant", "content": "hi!", "finish_reason": "stop", "tool_calls": [{"name": "f"}]}
    ]
    assert f.finish_reasons == ["stop"]
    assert (f.conversation_id, f.user_id) == ("sess", "user")
    assert not any(k.startswith(("gen_ai.prompt.", "gen_ai.completion.")) for k in attrs)


def test_openllmetry_traceloop_tool_and_agent() -> None:
    tool = {
        "traceloop.span.kind": "tool",
        "traceloop.entity.name": "get_weather",
        "traceloop.entity.input": '{"city": "Oslo"}',
        "traceloop.entity.output": '"rain"',
    }
    f = extract_genai(tool)
    assert (f.operation, f.tool_name, f.tool_arguments, f.tool_result) == (
        "execute_tool",
        "get_weather",
        '{"city": "Oslo"}',
        '"rain"',
    )
    agent = {"traceloop.span.kind": "agent", "traceloop.entity.name": "triage"}
    g = extract_genai(agent)
    assert (g.operation, g.agent_name) == ("invoke_agent", "triage")


def test_plain_span_untouched() -> None:
    attrs = {"http.method": "GET", "input.value": "not genai"}
    f = extract_genai(attrs)
    assert f == GenAIFields()
    assert attrs == {"http.method": "GET", "input.value": "not genai"}


def test_bad_token_values_are_null_not_errors() -> None:
    f = extract_genai(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": "lots",
            "gen_ai.usage.output_tokens": -3,
        }
    )
    assert f.input_tokens is None and f.output_tokens is None and f.total_tokens is None


def test_unflatten_orders_numerically() -> None:
    attrs = {f"p.{i}.v": i for i in (10, 2, 1)}
    assert unflatten(attrs, "p.") == [{"v": 1}, {"v": 2}, {"v": 10}]
    assert attrs == {}


def test_content_events_fill_empty_payloads() -> None:
    f = extract_genai({"gen_ai.operation.name": "chat"})
    ev = {"gen_ai.prompt": '[{"role":"user"}]', "other": 1}
    take_event_payloads(f, "gen_ai.content.prompt", ev)
    assert f.input_messages == '[{"role":"user"}]' and ev == {"other": 1}


def test_token_counts_outside_uint64_are_null_not_a_failed_batch() -> None:
    """A count the UInt64 column cannot hold used to pass row building and then fail the
    Arrow conversion of the whole batch; it is not a count."""
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": 1e30,
        "gen_ai.usage.output_tokens": "18446744073709551616",  # 2^64 as text
        "gen_ai.usage.cache_read.input_tokens": float("nan"),
        "gen_ai.usage.reasoning.output_tokens": "-0.5",
    }
    f = extract_genai(attrs)
    assert (f.input_tokens, f.output_tokens, f.cached_input_tokens, f.reasoning_tokens) == (None,) * 4
    big = (1 << 63) + 5.0  # each fits, the sum does not
    f = extract_genai({"gen_ai.usage.input_tokens": big, "gen_ai.usage.output_tokens": big})
    assert f.input_tokens == int(big) and f.total_tokens is None
    f = extract_genai({"gen_ai.usage.input_tokens": "12", "gen_ai.usage.output_tokens": 3.0})
    assert (f.input_tokens, f.output_tokens, f.total_tokens) == (12, 3, 15)
