"""Deterministic builder of realistic GenAI agent traces as OTLP protobuf.

The shapes follow the OpenTelemetry GenAI semantic conventions (messages as role + parts
JSON, ``gen_ai.usage.*`` tokens, ``error.type``) so every downstream stage — redaction,
scoring, column extraction, cost — is exercised by the same kind of data real SDKs send.

A trace is either an agent run (``invoke_agent`` root whose ``chat`` children alternate
with ``execute_tool`` children) or, about one in ten, a lone ``chat`` call. Every export
request holds whole traces and exactly ``batch`` spans (the last one holds the remainder):
the size of the last trace of each request is chosen to fill it. Keeping traces whole
lets :class:`spanline.loadgen.request_pool.RequestPool` give a request fresh trace ids
without tearing a trace across two ids. (Real SDK batches can split a trace across
requests; the ingest tests cover that with the real SDK.)

Everything is drawn from ``random.Random(seed)``: the same seed and ``start_time_ns``
give byte-identical requests.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    InstrumentationScope,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from spanline.loadgen import openinference_attrs as oi
from spanline.loadgen.otlp_values import key_value
from spanline.loadgen.pii import PII_KINDS, PlantedPii, make_pii

SCOPE_NAME = "spanline.loadgen"
SCOPE_VERSION = "0.1.0"
ERROR_RATE = 0.10
STANDALONE_CHAT_RATE = 0.10
MAX_TOOL_TURNS = 3
_MS = 1_000_000
# sampled, and "parent is not remote" is known (what the Python SDK sets for in-process parents)
_SPAN_FLAGS = 0x100 | 0x01

# "default": OTel GenAI attributes only, 1-8 spans a trace. "heavy": what apps instrumented
# with both OTel GenAI and OpenInference send (issue 14's load): every agent run is an
# invoke_agent root with chat -> execute_tool -> chat -> chat (5 spans), and every span
# carries both conventions with message content (~2.5 KB of protobuf a span).
PROFILES = ("default", "heavy")
HEAVY_TRACE_SPANS = 5
# content sizes that make the heavy profile's spans average ~2.5 KB: each chat repeats its
# input three times (gen_ai.input.messages, input.value, llm.input_messages.*)
_HEAVY_PROMPT_CHARS = 40
_HEAVY_ANSWER_CHARS = (40, 120)


@dataclass(frozen=True)
class _Model:
    provider: str
    request: str
    response: str
    server: str
    reasoning: bool = False


_MODELS: tuple[_Model, ...] = (
    _Model("openai", "gpt-4o", "gpt-4o-2024-08-06", "api.openai.com"),
    _Model("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "api.openai.com"),
    _Model("openai", "gpt-4.1", "gpt-4.1-2025-04-14", "api.openai.com"),
    _Model("openai", "o4-mini", "o4-mini-2025-04-16", "api.openai.com", reasoning=True),
    _Model("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "api.anthropic.com"),
    _Model("anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku-20241022", "api.anthropic.com"),
)


@dataclass(frozen=True)
class _Agent:
    name: str
    service: str
    instructions: str
    tools: tuple[str, ...]
    topics: tuple[str, ...]


_AGENTS: tuple[_Agent, ...] = (
    _Agent(
        "support-agent",
        "support-bot",
        "You are a customer support agent for an online store. Be concise, verify the order "
        "before acting, never promise refunds above policy, and escalate legal questions.",
        ("lookup_order", "issue_refund", "search_kb"),
        ("a late delivery", "a damaged parcel", "a double charge", "a missing invoice"),
    ),
    _Agent(
        "travel-agent",
        "trip-planner",
        "You plan trips. Prefer direct flights, respect the traveller's budget, and always "
        "state prices with their currency and the date they were checked.",
        ("search_flights", "get_weather", "book_hotel"),
        ("a weekend in Lisbon", "a conference in Berlin", "a family trip to Kyoto"),
    ),
    _Agent(
        "research-agent",
        "research-assistant",
        "You are a research assistant. Cite every source you use, quote numbers exactly, and "
        "say when the evidence is weak or contradictory.",
        ("web_search", "fetch_url", "summarize"),
        ("battery recycling rates", "heat pump efficiency", "EU AI Act obligations"),
    ),
)

_FILLER = (
    "I have already tried the steps on the help page and nothing changed.",
    "Please keep the answer short, I am reading this on my phone.",
    "This is the third time I am asking, so I would appreciate a clear answer.",
    "If you need more details I can send screenshots or the confirmation email.",
    "My colleague had the same issue last month and it was solved within a day.",
    "Could you also tell me what the usual processing time is for this kind of request?",
    "I would prefer an answer in plain language rather than policy references.",
    "Let me know whether anything else is needed from my side before you proceed.",
)
_ANSWER = (
    "Thanks for the details — I checked the records and here is what I found.",
    "The request is within policy, so I went ahead with the next step.",
    "You should receive a confirmation within the next few minutes.",
    "I noted the context you gave so nobody asks you for it again.",
    "If anything looks wrong in the summary below, reply and I will correct it.",
    "The figures come from the latest data available to me at the time of the check.",
    "I could not confirm every detail, so I marked the uncertain parts explicitly.",
)
_REVIEW = "Check this reply to a customer for policy problems; answer OK or list them: "
_CHAT_ERRORS = ("openai.RateLimitError", "openai.APITimeoutError", "anthropic.InternalServerError", "429")
_TOOL_ERRORS = ("TimeoutError", "ToolExecutionError", "ConnectionResetError")


@dataclass
class TraceSet:
    """Generated requests plus what a test needs to check them."""

    requests: list[ExportTraceServiceRequest]
    planted: list[PlantedPii] = field(default_factory=list)
    trace_ids: list[bytes] = field(default_factory=list)
    error_trace_ids: set[bytes] = field(default_factory=set)
    span_count: int = 0


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _tokens(text: str) -> int:
    """Roughly four characters per token, which is what English text averages."""
    return max(1, len(text) // 4)


class _TraceFactory:
    """Draws traces one by one from a single RNG stream so the output depends on the seed only."""

    def __init__(self, seed: int, plant_pii: bool, start_time_ns: int, profile: str = "default") -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
        self.rng = random.Random(seed)
        self.plant_pii = plant_pii
        self.heavy = profile == "heavy"
        self.clock_ns = start_time_ns
        self.planted: list[PlantedPii] = []
        self.error_trace_ids: set[bytes] = set()
        self.trace_ids: list[bytes] = []
        self._pii_serial = 0

    # ----- ids, time, text -------------------------------------------------------------
    def _trace_id(self) -> bytes:
        return self.rng.getrandbits(128).to_bytes(16, "big") or b"\x01" * 16

    def _span_id(self) -> bytes:
        return self.rng.getrandbits(64).to_bytes(8, "big")

    def _sentences(self, pool: Sequence[str], target_len: int) -> str:
        parts: list[str] = []
        size = 0
        while size < target_len:
            s = self.rng.choice(pool)
            parts.append(s)
            size += len(s) + 1
        return " ".join(parts)

    def _pii(self, trace_id: bytes) -> str:
        kind = PII_KINDS[self._pii_serial % len(PII_KINDS)]
        value = make_pii(kind, self.rng, self._pii_serial)
        self._pii_serial += 1
        self.planted.append(PlantedPii(kind=kind, value=value, trace_id=trace_id))
        return value

    # ----- one trace -------------------------------------------------------------------
    def trace_size(self) -> int:
        """Span count of the next trace when nothing constrains it: 1 (lone chat) or 2+2k;
        always 5 in the heavy profile."""
        if self.heavy:
            return HEAVY_TRACE_SPANS
        if self.rng.random() < STANDALONE_CHAT_RATE:
            return 1
        return 2 + 2 * self.rng.randint(0, MAX_TOOL_TURNS)

    def build_trace(self, size: int) -> tuple[str, list[Span]]:
        """Spans of one trace with exactly ``size`` spans, children first (SDKs export on end)."""
        trace_id = self._trace_id()
        self.trace_ids.append(trace_id)
        agent = self.rng.choice(_AGENTS)
        model = self.rng.choice(_MODELS)
        failed = self.rng.random() < ERROR_RATE
        if failed:
            self.error_trace_ids.add(trace_id)
        start = self.clock_ns
        self.clock_ns += self.rng.randint(5, 60) * _MS

        topic = self.rng.choice(agent.topics)
        prompt_chars = _HEAVY_PROMPT_CHARS if self.heavy else 380
        prompt = (f"Hello, I need help with {topic}. " + self._sentences(_FILLER, prompt_chars)).rstrip()
        if self.plant_pii:
            prompt += f" You can reach me at {self._pii(trace_id)} if needed."
        history: list[dict[str, Any]] = [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]
        conversation_id = f"conv_{self.rng.getrandbits(48):012x}"

        if size == 1:
            span = self._chat(trace_id, None, start, model, agent, history, final=True, failed=failed)
            return agent.service, [span]
        if self.heavy:
            return agent.service, self._heavy_run(
                trace_id, start, agent, model, history, conversation_id, size, failed=failed
            )

        root_id = self._span_id()
        children: list[Span] = []
        t = start + self.rng.randint(1, 5) * _MS
        turns = (size - 2) // 2
        # A failing run fails either in its last tool call (the model then gives up) or in
        # its final model call; either way the agent span ends in error.
        failing_tool = turns - 1 if failed and turns > 0 and self.rng.random() < 0.5 else -1
        for turn in range(turns + 1):
            final = turn == turns
            fail_chat = failed and final and failing_tool < 0
            chat = self._chat(trace_id, root_id, t, model, agent, history, final=final, failed=fail_chat)
            children.append(chat)
            t = chat.end_time_unix_nano + self.rng.randint(1, 3) * _MS
            if final:
                break
            call = history[-1]["parts"][0]
            tool, tool_message = self._tool(
                trace_id, root_id, t, call, failed=turn == failing_tool, turn=turn
            )
            history.append(tool_message)
            children.append(tool)
            t = tool.end_time_unix_nano + self.rng.randint(1, 3) * _MS
        errored = next((c for c in children if c.status.code == Status.STATUS_CODE_ERROR), None)
        root = self._root(trace_id, root_id, start, t, agent, model, conversation_id, errored)
        return agent.service, [*children, root]

    def _heavy_run(
        self,
        trace_id: bytes,
        start: int,
        agent: _Agent,
        model: _Model,
        history: list[dict[str, Any]],
        conversation_id: str,
        size: int,
        *,
        failed: bool,
    ) -> list[Span]:
        """An agent run of ``size`` spans (5 unless a request's tail leaves less room): chat
        (tool call) -> execute_tool -> chat (answer) -> chat (a review of the answer, on its
        own short input as guardrail calls are), then the root.

        A failing run fails in its tool call or in its last chat, half and half."""
        prompt = history[0]["parts"][0]["content"]
        root_id = self._span_id()
        # the children of a smaller tail trace: the first steps of the full plan
        plan = {2: ["answer"], 3: ["answer", "review"], 4: ["tool_call", "tool", "answer"]}.get(
            size, ["tool_call", "tool", "answer", "review"]
        )
        failing_tool = failed and "tool" in plan and self.rng.random() < 0.5
        children: list[Span] = []
        answer = ""
        t = start + self.rng.randint(1, 5) * _MS
        for i, step in enumerate(plan):
            fail = failed and i == len(plan) - 1 and not failing_tool
            if step == "tool":
                call = history[-1]["parts"][0]
                span, message = self._tool(trace_id, root_id, t, call, failed=failing_tool, turn=0)
                history.append(message)
            elif step == "review":
                review = [{"role": "user", "parts": [{"type": "text", "content": _REVIEW + answer}]}]
                span = self._chat(trace_id, root_id, t, model, agent, review, final=True, failed=fail)
            else:
                span = self._chat(
                    trace_id, root_id, t, model, agent, history, final=step == "answer", failed=fail
                )
                if step == "answer" and not fail:
                    answer = history[-1]["parts"][0]["content"]
            children.append(span)
            t = span.end_time_unix_nano + self.rng.randint(1, 3) * _MS
        errored = next((c for c in children if c.status.code == Status.STATUS_CODE_ERROR), None)
        root = self._root(trace_id, root_id, start, t, agent, model, conversation_id, errored)
        root.attributes.extend(
            [
                key_value("gen_ai.input.messages", _dumps(history[:1])),
                *oi.agent_attrs(agent.name, conversation_id, prompt, answer),
            ]
        )
        if answer:
            out = [
                {"role": "assistant", "parts": [{"type": "text", "content": answer}], "finish_reason": "stop"}
            ]
            root.attributes.append(key_value("gen_ai.output.messages", _dumps(out)))
        return [*children, root]

    def _root(
        self,
        trace_id: bytes,
        span_id: bytes,
        start: int,
        end: int,
        agent: _Agent,
        model: _Model,
        conversation_id: str,
        errored: Span | None,
    ) -> Span:
        attrs = [
            key_value("gen_ai.operation.name", "invoke_agent"),
            key_value("gen_ai.provider.name", model.provider),
            key_value("gen_ai.agent.name", agent.name),
            key_value("gen_ai.agent.id", f"asst_{agent.name.replace('-', '_')}_v3"),
            key_value("gen_ai.conversation.id", conversation_id),
            key_value("gen_ai.request.model", model.request),
        ]
        status = Status(code=Status.STATUS_CODE_UNSET)
        if errored is not None:
            error_type = next(kv.value.string_value for kv in errored.attributes if kv.key == "error.type")
            attrs.append(key_value("error.type", error_type))
            status = Status(code=Status.STATUS_CODE_ERROR, message=errored.status.message)
        return Span(
            trace_id=trace_id,
            span_id=span_id,
            name=f"invoke_agent {agent.name}",
            kind=Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=start,
            end_time_unix_nano=end,
            attributes=attrs,
            status=status,
            flags=_SPAN_FLAGS,
        )

    def _chat(
        self,
        trace_id: bytes,
        parent: bytes | None,
        start: int,
        model: _Model,
        agent: _Agent,
        history: list[dict[str, Any]],
        *,
        final: bool,
        failed: bool,
    ) -> Span:
        """A ``chat`` span; appends the assistant turn it produced to ``history``."""
        input_messages = _dumps(history)
        # heavy: the first sentence only, since both conventions repeat it on every chat
        instructions = agent.instructions.split(". ")[0] + "." if self.heavy else agent.instructions
        system = _dumps([{"type": "text", "content": instructions}])
        input_tokens = _tokens(input_messages) + _tokens(system)
        oi_input = list(history) if self.heavy else []
        temperature = self.rng.choice((0.0, 0.2, 0.7))
        attrs = [
            key_value("gen_ai.operation.name", "chat"),
            key_value("gen_ai.provider.name", model.provider),
            key_value("gen_ai.request.model", model.request),
            key_value("gen_ai.request.temperature", temperature),
            key_value("gen_ai.request.max_tokens", 1024),
            key_value("server.address", model.server),
            key_value("server.port", 443),
            key_value("gen_ai.system_instructions", system),
            key_value("gen_ai.input.messages", input_messages),
        ]
        duration = self.rng.randint(250, 3500) * _MS
        status = Status(code=Status.STATUS_CODE_UNSET)
        events: list[Span.Event] = []
        oi_output: list[dict[str, Any]] | None = None
        finish = ""
        output_tokens = cached = 0
        if failed:
            error_type = self.rng.choice(_CHAT_ERRORS)
            duration = self.rng.randint(20, 30_000) * _MS
            attrs.append(key_value("error.type", error_type))
            status = Status(code=Status.STATUS_CODE_ERROR, message=f"{error_type}: request failed")
            events.append(self._exception_event(start + duration, error_type))
        else:
            finish = "stop" if final else "tool_calls"
            if model.provider == "anthropic":
                finish = "end_turn" if final else "tool_use"
            if final:
                low, high = _HEAVY_ANSWER_CHARS if self.heavy else (250, 600)
                text = self._sentences(_ANSWER, self.rng.randint(low, high))
                parts: list[dict[str, Any]] = [{"type": "text", "content": text}]
            else:
                tool_name = self.rng.choice(agent.tools)
                call_id = f"call_{self.rng.getrandbits(96):024x}"
                arguments = {"query": self.rng.choice(agent.topics), "limit": self.rng.randint(1, 10)}
                parts = [{"type": "tool_call", "id": call_id, "name": tool_name, "arguments": arguments}]
            output = [{"role": "assistant", "parts": parts, "finish_reason": finish}]
            output_json = _dumps(output)
            output_tokens = _tokens(output_json)
            cached = (input_tokens // 256) * 128 if len(history) > 1 else 0
            attrs += [
                key_value("gen_ai.response.model", model.response),
                key_value("gen_ai.response.id", f"chatcmpl-{self.rng.getrandbits(80):020x}"),
                key_value("gen_ai.response.finish_reasons", [finish]),
                key_value("gen_ai.output.type", "text"),
                key_value("gen_ai.usage.input_tokens", input_tokens),
                key_value("gen_ai.usage.output_tokens", output_tokens),
                key_value("gen_ai.usage.cache_read.input_tokens", cached),
                key_value("gen_ai.output.messages", output_json),
            ]
            if model.reasoning:
                attrs.append(key_value("gen_ai.usage.reasoning.output_tokens", self.rng.randint(64, 2048)))
            history.append({"role": "assistant", "parts": parts})
            oi_output = history[-1:]
        if self.heavy:
            attrs += oi.llm_attrs(
                provider=model.provider,
                request_model=model.request,
                response_model=model.response,
                temperature=temperature,
                max_tokens=1024,
                system=instructions,
                history=oi_input,
                output=oi_output,
                finish_reason=finish,
                tokens=(input_tokens, output_tokens, cached),
            )
        return Span(
            trace_id=trace_id,
            span_id=self._span_id(),
            parent_span_id=parent or b"",
            name=f"chat {model.request}",
            kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=start,
            end_time_unix_nano=start + duration,
            attributes=attrs,
            events=events,
            status=status,
            flags=_SPAN_FLAGS,
        )

    def _tool(
        self,
        trace_id: bytes,
        parent: bytes,
        start: int,
        call: dict[str, Any],
        *,
        failed: bool,
        turn: int,
    ) -> tuple[Span, dict[str, Any]]:
        """An ``execute_tool`` span answering ``call``, and the tool message the model sees next."""
        result: dict[str, Any] = {
            "status": "ok",
            "items": [self._sentences(_ANSWER, 60) for _ in range(self.rng.randint(1, 3))],
        }
        if self.plant_pii and turn == 0 and not failed:
            result["contact"] = self._pii(trace_id)
        result_json = _dumps(result)
        attrs = [
            key_value("gen_ai.operation.name", "execute_tool"),
            key_value("gen_ai.tool.name", call["name"]),
            key_value("gen_ai.tool.type", "function"),
            key_value("gen_ai.tool.call.id", call["id"]),
            key_value("gen_ai.tool.call.arguments", _dumps(call["arguments"])),
        ]
        duration = self.rng.randint(15, 900) * _MS
        status = Status(code=Status.STATUS_CODE_UNSET)
        if failed:
            error_type = self.rng.choice(_TOOL_ERRORS)
            attrs.append(key_value("error.type", error_type))
            status = Status(
                code=Status.STATUS_CODE_ERROR, message=f"{error_type}: tool {call['name']} failed"
            )
            result = {"status": "error", "error": error_type}
        else:
            attrs.append(key_value("gen_ai.tool.call.result", result_json))
        if self.heavy:
            arguments = _dumps(call["arguments"])
            attrs += oi.tool_attrs(call["name"], call["id"], arguments, None if failed else result_json)
        message = {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": call["id"], "response": result}],
        }
        span = Span(
            trace_id=trace_id,
            span_id=self._span_id(),
            parent_span_id=parent,
            name=f"execute_tool {call['name']}",
            kind=Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=start,
            end_time_unix_nano=start + duration,
            attributes=attrs,
            status=status,
            flags=_SPAN_FLAGS,
        )
        return span, message

    def _exception_event(self, at: int, error_type: str) -> Span.Event:
        return Span.Event(
            time_unix_nano=at,
            name="exception",
            attributes=[
                key_value("exception.type", error_type),
                key_value("exception.message", "The upstream model provider did not answer in time."),
            ],
        )


def _resource(service: str) -> Resource:
    return Resource(
        attributes=[
            key_value("service.name", service),
            key_value("service.version", "1.8.2"),
            key_value("service.namespace", "agents"),
            key_value("deployment.environment.name", "production"),
            key_value("telemetry.sdk.name", "opentelemetry"),
            key_value("telemetry.sdk.language", "python"),
            key_value("telemetry.sdk.version", "1.45.2"),
        ]
    )


def _request(traces: list[tuple[str, list[Span]]]) -> ExportTraceServiceRequest:
    by_service: dict[str, list[Span]] = {}
    for service, spans in traces:
        by_service.setdefault(service, []).extend(spans)
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=_resource(service),
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(name=SCOPE_NAME, version=SCOPE_VERSION),
                        spans=spans,
                    )
                ],
                schema_url="https://opentelemetry.io/schemas/1.37.0",
            )
            for service, spans in by_service.items()
        ]
    )


def _fit(size: int, room: int, heavy: bool = False) -> int:
    """Largest valid trace size (1 or an even number >= 2; heavy: 1 to 5) not above ``room``."""
    if size <= room:
        return size
    if heavy:
        return room
    if room == 1:
        return 1
    return min(room - room % 2, 2 + 2 * MAX_TOOL_TURNS)


def build_trace_set(
    total_spans: int,
    batch: int,
    seed: int = 0,
    plant_pii: bool = False,
    start_time_ns: int | None = None,
    profile: str = "default",
) -> TraceSet:
    """Requests of ``batch`` spans each (the last holds the rest), ``total_spans`` in all.

    ``start_time_ns`` anchors span timestamps; it defaults to now, so pass a fixed value
    when comparing two runs byte for byte. ``profile`` is one of :data:`PROFILES`.
    """
    if total_spans < 0:
        raise ValueError("total_spans must be >= 0")
    if batch < 1:
        raise ValueError("batch must be >= 1")
    start = time.time_ns() if start_time_ns is None else start_time_ns
    factory = _TraceFactory(seed, plant_pii, start, profile)
    requests: list[ExportTraceServiceRequest] = []
    remaining = total_spans
    while remaining > 0:
        room = min(batch, remaining)
        request_spans = room
        traces: list[tuple[str, list[Span]]] = []
        while room > 0:
            size = _fit(factory.trace_size(), room, factory.heavy)
            traces.append(factory.build_trace(size))
            room -= size
        requests.append(_request(traces))
        remaining -= request_spans
    return TraceSet(
        requests=requests,
        planted=factory.planted,
        trace_ids=factory.trace_ids,
        error_trace_ids=factory.error_trace_ids,
        span_count=total_spans,
    )


def build_requests(
    total_spans: int,
    batch: int,
    seed: int = 0,
    plant_pii: bool = False,
    start_time_ns: int | None = None,
    profile: str = "default",
) -> list[ExportTraceServiceRequest]:
    """Just the requests of :func:`build_trace_set`."""
    return build_trace_set(total_spans, batch, seed, plant_pii, start_time_ns, profile).requests


def serialize_requests(requests: Sequence[ExportTraceServiceRequest]) -> list[bytes]:
    """Wire bytes, so a sender pays protobuf encoding once, before the clock starts."""
    return [r.SerializeToString() for r in requests]
