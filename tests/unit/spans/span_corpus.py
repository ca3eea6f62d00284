"""Randomised OTLP spans covering every branch of span row building.

The writer has a fast path for common spans and a general path for everything else; the
differential test feeds both the same messages. The corpus therefore mixes the three GenAI
conventions, payload keys, flattened message lists, every AnyValue type (including unset,
empty, negative, non-finite and nested values), repeated keys, events (content events too),
links, odd ids, kinds and status codes, several resources and scopes per message.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

from spanline.loadgen.otlp_values import key_value
from spanline.spans.row_errors import RowBuildError

KEYS = (
    # OTel GenAI
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.completion_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.input_tokens_details.cached",
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "gen_ai.usage.total_tokens",
    "gen_ai.server.time_to_first_token",
    "gen_ai.response.time_to_first_chunk",
    "gen_ai.response.finish_reasons",
    "gen_ai.response.finish_reason",
    "gen_ai.conversation.id",
    "gen_ai.agent.name",
    "gen_ai.agent.id",
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
    "gen_ai.user",
    "gen_ai.request.temperature",
    # OpenInference
    "openinference.span.kind",
    "llm.provider",
    "llm.system",
    "llm.model_name",
    "llm.token_count.prompt",
    "llm.token_count.completion",
    "llm.token_count.total",
    "llm.token_count.prompt_details.cache_read",
    "llm.token_count.completion_details.reasoning",
    "llm.finish_reason",
    "llm.invocation_parameters",
    "session.id",
    "user.id",
    "agent.name",
    "tool.name",
    "tool_call.id",
    "tool_call.function.name",
    # OpenLLMetry / Traceloop
    "llm.request.type",
    "llm.usage.total_tokens",
    "llm.usage.prompt_tokens",
    "llm.usage.completion_tokens",
    "llm.usage.cache_read_input_tokens",
    "llm.usage.reasoning_tokens",
    "traceloop.span.kind",
    "traceloop.entity.name",
    "traceloop.association.properties.session_id",
    "traceloop.association.properties.user_id",
    "enduser.id",
    # plain
    "http.method",
    "server.address",
    "db.system",
    "custom.flag",
    "custom.ratio",
)
PAYLOAD_KEYS = (
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "input.value",
    "output.value",
    "traceloop.entity.input",
    "traceloop.entity.output",
    "tool_call.function.arguments",
)
FLATTENED = (
    "llm.input_messages.{i}.message.role",
    "llm.input_messages.{i}.message.content",
    "llm.output_messages.{i}.message.role",
    "llm.output_messages.{i}.message.content",
    "llm.output_messages.{i}.message.tool_calls.0.tool_call.function.name",
    "gen_ai.prompt.{i}.role",
    "gen_ai.prompt.{i}.content",
    "gen_ai.completion.{i}.content",
    "gen_ai.completion.{i}.finish_reason",
    "llm.input_messages.x.message.role",  # not indexed: not a flattened list
    "gen_ai.prompt.x",
)
TEXTS = (
    "chat",
    "execute_tool",
    "invoke_agent",
    "embeddings",
    "LLM",
    "TOOL",
    "AGENT",
    "CHAIN",
    "tool",
    "agent",
    "completion",
    "embedding",
    "OpenAI",
    "openai",
    "anthropic",
    "gcp.gemini",
    "azure.ai.openai",
    "gpt-4o-mini-2024-07-18",
    "gpt-4o",
    "claude-sonnet-4-5-20250929",
    "gpt-4.1",
    "no-such-model",
    "models/gemini-2.0-flash",
    "12",
    "3.5",
    "lots",
    '["stop","length"]',
    "[not json",
    "stop",
    '[{"role":"user","content":"hi"}]',
    "héllo wörld ✓",
    'quote " back \\ tab\t nl\n ctl\x01 del\x7f',
    "spanline-ref:sha256:" + "ab" * 32 + ":5000000",
)


def _set_value(rng: random.Random, value: AnyValue, depth: int = 0) -> None:
    kind = rng.randrange(14 if depth == 0 else 7)
    if kind == 0:
        return  # unset AnyValue
    if kind in (1, 7, 8, 9, 10):
        value.string_value = rng.choice(TEXTS)
    elif kind == 2:
        value.string_value = ""
    elif kind in (3, 11):
        value.int_value = rng.choice((0, 1, 7, 250, 4096, -3, 2**40))
    elif kind == 4:
        value.double_value = rng.choice((0.0, 0.25, 1.5, 1e16, -2.0, float("nan"), float("inf")))
    elif kind == 5:
        value.bool_value = rng.random() < 0.5
    elif kind == 6:
        value.bytes_value = bytes(rng.randrange(256) for _ in range(rng.randrange(5)))
    elif kind == 12:
        for _ in range(rng.randrange(3)):
            _set_value(rng, value.array_value.values.add(), depth + 1)
    else:
        for j in range(rng.randrange(3)):
            kv = value.kvlist_value.values.add(key=f"k{j}")
            _set_value(rng, kv.value, depth + 1)


def _attrs(rng: random.Random, attrs: Any, n: int) -> None:
    for _ in range(n):
        r = rng.random()
        if r < 0.6:
            key = rng.choice(KEYS)
        elif r < 0.8:
            key = rng.choice(PAYLOAD_KEYS)
        elif r < 0.9:
            key = rng.choice(FLATTENED).format(i=rng.randrange(3))
        else:
            key = f"app.attr{rng.randrange(5)}"
        _set_value(rng, attrs.add(key=key).value)


def _realistic(rng: random.Random, span: Span) -> None:
    """A well-formed OTel GenAI chat or tool span (the shape most traffic has)."""

    def put(key: str, value: object) -> None:
        span.attributes.append(key_value(key, value))

    if rng.random() < 0.6:
        model = rng.choice(("gpt-4o-mini-2024-07-18", "claude-sonnet-4-5-20250929", "gpt-4.1", "mystery"))
        put("gen_ai.operation.name", "chat")
        put("gen_ai.provider.name", rng.choice(("openai", "anthropic", "OpenAI")))
        put("gen_ai.request.model", model)
        put("gen_ai.response.model", model)
        put("gen_ai.usage.input_tokens", rng.randrange(1, 5000))
        put("gen_ai.usage.output_tokens", rng.randrange(1, 500))
        put("gen_ai.response.finish_reasons", ["stop"])
        put("gen_ai.input.messages", json.dumps([{"role": "user", "content": "héllo " * rng.randrange(40)}]))
        put("gen_ai.output.messages", json.dumps([{"role": "assistant", "content": "ok"}]))
        if rng.random() < 0.5:  # a string array, the array shape most attributes have
            put("app.tags", [rng.choice(TEXTS) for _ in range(rng.randrange(4))])
    else:
        put("gen_ai.operation.name", "execute_tool")
        put("gen_ai.tool.name", "lookup")
        put("gen_ai.tool.call.id", f"call_{rng.randrange(10**6)}")
        put("gen_ai.tool.call.arguments", '{"q":"x"}')
        put("gen_ai.tool.call.result", '{"ok":true}')


def _id(rng: random.Random, size: int, *, optional: bool) -> bytes:
    r = rng.random()
    if optional and r < 0.2:
        return b""
    if optional and r < 0.25:
        return bytes(size)
    return rng.getrandbits(size * 8).to_bytes(size, "big")


def make_message(rng: random.Random, base_ns: int) -> TracesData:
    td = TracesData()
    for _ in range(rng.choice((1, 1, 1, 2))):
        rs = td.resource_spans.add()
        if rng.random() < 0.9:
            rs.resource.attributes.add(key="service.name").value.string_value = rng.choice(("svc-a", "svc-b"))
        if rng.random() < 0.2:
            rs.resource.attributes.add(key="service.name").value.int_value = 7
        _attrs(rng, rs.resource.attributes, rng.randrange(3))
        for _ in range(rng.choice((1, 1, 2))):
            ss = rs.scope_spans.add()
            if rng.random() < 0.8:
                ss.scope.name = rng.choice(("openai_v2", "openinference.instrumentation.openai", ""))
                ss.scope.version = rng.choice(("1.0", ""))
            if rng.random() < 0.05:
                ss.scope.attributes.add(key="scope.attr").value.string_value = "x"
            trace_id = _id(rng, 16, optional=False)
            for _ in range(rng.randrange(1, 6)):
                span = ss.spans.add(trace_id=trace_id, span_id=_id(rng, 8, optional=False))
                span.parent_span_id = _id(rng, 8, optional=True)
                span.name = rng.choice(("chat gpt-4o", "tool", "", "ünïcode"))
                span.kind = rng.choice((0, 1, 2, 3, 4, 5, 9))
                span.start_time_unix_nano = base_ns + rng.randrange(10**9)
                span.end_time_unix_nano = span.start_time_unix_nano + rng.randrange(-1000, 10**9)
                if rng.random() < 0.1:
                    span.trace_state = "vendor=1"
                if rng.random() < 0.3:
                    span.status.code = rng.choice((0, 1, 2, 7))
                    span.status.message = rng.choice(("", "boom"))
                if rng.random() < 0.5:
                    _realistic(rng, span)
                    if rng.random() < 0.3:
                        _attrs(rng, span.attributes, rng.randrange(1, 4))
                else:
                    _attrs(rng, span.attributes, rng.randrange(12))
                if rng.random() < 0.15:
                    for _ in range(rng.randrange(1, 3)):
                        ev = span.events.add(
                            time_unix_nano=base_ns + rng.randrange(10**9),
                            name=rng.choice(
                                (
                                    "gen_ai.content.prompt",
                                    "gen_ai.content.completion",
                                    "gen_ai.client.inference.operation.details",
                                    "exception",
                                )
                            ),
                        )
                        for key in ("gen_ai.prompt", "gen_ai.completion", "gen_ai.input.messages"):
                            if rng.random() < 0.5:
                                _set_value(rng, ev.attributes.add(key=key).value)
                        _attrs(rng, ev.attributes, rng.randrange(2))
                if rng.random() < 0.1:
                    link = span.links.add(
                        trace_id=_id(rng, 16, optional=False), span_id=_id(rng, 8, optional=False)
                    )
                    link.trace_state = rng.choice(("", "a=b"))
                    _attrs(rng, link.attributes, rng.randrange(2))
    return td


def make_corpus(n_messages: int, seed: int, base_ns: int = 1_763_000_000_000_000_000) -> list[bytes]:
    rng = random.Random(seed)
    return [make_message(rng, base_ns).SerializeToString() for _ in range(n_messages)]


def feed(add: Callable[[bytes, str, int], object], corpus: list[bytes]) -> list[str]:
    """Add every message (project "p", message i received at 1000 + i); the errors, numbered."""
    errors = []
    for i, value in enumerate(corpus):
        try:
            add(value, "p", 1_000 + i)
        except RowBuildError as exc:
            errors.append(f"{i}: {exc}")
    return errors
