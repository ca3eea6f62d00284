"""OpenInference attributes for the loadgen's heavy profile.

Apps instrumented with both an OTel GenAI instrumentation and OpenInference (Arize/Phoenix)
export spans that carry the same call twice: ``gen_ai.*`` with messages as role + parts
JSON, and OpenInference's ``openinference.span.kind``, ``llm.*`` (flattened message lists,
token counts, invocation parameters) and ``input.value``/``output.value`` (the request and
response as JSON). The heavy profile (``profile="heavy"`` in
:mod:`spanline.loadgen.genai_traces`) adds these to every span, so storage, redaction and
scoring see the ~2.5 KB dual-convention spans such apps send. Key names follow
``openinference-semantic-conventions`` (the same keys the captured OpenInference
instrumentation emits, see docs/loadgen.md).
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from spanline.loadgen.otlp_values import key_value

JSON_MIME = "application/json"
TEXT_MIME = "text/plain"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def openai_messages(history: list[dict[str, Any]], system: str = "") -> list[dict[str, Any]]:
    """GenAI role + parts messages as the OpenAI chat messages OpenInference records."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in history:
        for part in message["parts"]:
            kind = part["type"]
            if kind == "text":
                out.append({"role": message["role"], "content": part["content"]})
            elif kind == "tool_call":
                call = {"name": part["name"], "arguments": _dumps(part["arguments"])}
                out.append(
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": part["id"], "type": "function", "function": call}],
                    }
                )
            elif kind == "tool_call_response":
                out.append({"role": "tool", "tool_call_id": part["id"], "content": _dumps(part["response"])})
    return out


def _flattened(prefix: str, messages: list[dict[str, Any]]) -> list[KeyValue]:
    """``llm.input_messages.N.message.*`` keys of a message list (tool calls nested as OpenInference does)."""
    attrs: list[KeyValue] = []
    for i, m in enumerate(messages):
        base = f"{prefix}.{i}.message"
        attrs.append(key_value(f"{base}.role", m["role"]))
        if "content" in m:
            attrs.append(key_value(f"{base}.content", m["content"]))
        if "tool_call_id" in m:
            attrs.append(key_value(f"{base}.tool_call_id", m["tool_call_id"]))
        for j, call in enumerate(m.get("tool_calls", ())):
            tc = f"{base}.tool_calls.{j}.tool_call"
            attrs += [
                key_value(f"{tc}.id", call["id"]),
                key_value(f"{tc}.function.name", call["function"]["name"]),
                key_value(f"{tc}.function.arguments", call["function"]["arguments"]),
            ]
    return attrs


def llm_attrs(
    *,
    provider: str,
    request_model: str,
    response_model: str,
    temperature: float,
    max_tokens: int,
    system: str,
    history: list[dict[str, Any]],
    output: list[dict[str, Any]] | None,
    finish_reason: str,
    tokens: tuple[int, int, int],
) -> list[KeyValue]:
    """An LLM span's OpenInference attributes; ``output`` None for a call that failed.

    ``history`` is the input (GenAI messages), ``output`` the assistant messages produced;
    ``tokens`` (prompt, completion, cache read)."""
    params = {"model": request_model, "temperature": temperature, "max_tokens": max_tokens}
    inputs = openai_messages(history, system)
    prompt, completion, cached = tokens
    attrs = [
        key_value("openinference.span.kind", "LLM"),
        key_value("llm.system", provider),
        key_value("llm.provider", provider),
        key_value("llm.invocation_parameters", _dumps(params)),
        key_value("input.value", _dumps({"messages": inputs, **params})),
        key_value("input.mime_type", JSON_MIME),
        *_flattened("llm.input_messages", inputs),
    ]
    if output is None:
        return attrs
    outputs = openai_messages(output)
    response = {
        "model": response_model,
        "choices": [{"index": 0, "message": m, "finish_reason": finish_reason} for m in outputs],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion},
    }
    return [
        *attrs,
        key_value("llm.model_name", response_model),
        key_value("llm.token_count.prompt", prompt),
        key_value("llm.token_count.completion", completion),
        key_value("llm.token_count.total", prompt + completion),
        key_value("llm.token_count.prompt_details.cache_read", cached),
        key_value("output.value", _dumps(response)),
        key_value("output.mime_type", JSON_MIME),
        *_flattened("llm.output_messages", outputs),
    ]


def tool_attrs(name: str, call_id: str, arguments: str, result: str | None) -> list[KeyValue]:
    """A TOOL span's OpenInference attributes; ``result`` None for a tool that failed."""
    attrs = [
        key_value("openinference.span.kind", "TOOL"),
        key_value("tool.name", name),
        key_value("tool_call.id", call_id),
        key_value("tool_call.function.arguments", arguments),
        key_value("input.value", arguments),
        key_value("input.mime_type", JSON_MIME),
    ]
    if result is not None:
        attrs += [key_value("output.value", result), key_value("output.mime_type", JSON_MIME)]
    return attrs


def agent_attrs(agent: str, session_id: str, prompt: str, answer: str) -> list[KeyValue]:
    """An AGENT (root) span's OpenInference attributes: the user's request and the final answer."""
    attrs = [
        key_value("openinference.span.kind", "AGENT"),
        key_value("agent.name", agent),
        key_value("session.id", session_id),
        key_value("input.value", prompt),
        key_value("input.mime_type", TEXT_MIME),
    ]
    if answer:
        attrs += [key_value("output.value", answer), key_value("output.mime_type", TEXT_MIME)]
    return attrs
