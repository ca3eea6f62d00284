"""GenAI typed columns from three attribute conventions.

Apps reach spanline through OpenTelemetry GenAI semconv instrumentations (``gen_ai.*``),
OpenInference (Arize/Phoenix: ``llm.*``, ``input.value``, flattened message lists) and
OpenLLMetry/Traceloop (``gen_ai.prompt.N.*``, ``traceloop.*``). Each name below is tried in
order, newest convention first, so a span carrying several spellings lands the same way.

Map policy: non-payload source attributes (model, tokens, ids...) stay in the ``attributes``
map so queries can still use the instrumentation's own names. Payload attributes (messages,
prompts, tool arguments/results) are *moved* to their ZSTD column and removed from the map,
so content is stored once. One exception is dropped rather than moved: OpenInference's
``input.value``/``output.value`` on a span whose ``llm.*_messages`` were reassembled, which
repeat the same request/response a second time (the cold tier keeps every span as sent).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spanline.spans.attributes import UINT64_MAX, json_text, to_float, to_int

CONV_OTEL = "otel"
CONV_OPENINFERENCE = "openinference"
CONV_OPENLLMETRY = "openllmetry"

PAYLOAD_COLUMNS = (
    "input_messages",
    "output_messages",
    "system_instructions",
    "tool_arguments",
    "tool_result",
)

_PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
_REQUEST_MODEL_KEYS = ("gen_ai.request.model",)
_RESPONSE_MODEL_KEYS = ("gen_ai.response.model",)
_INPUT_TOKEN_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "llm.usage.prompt_tokens",
)
_OUTPUT_TOKEN_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "llm.usage.completion_tokens",
)
_CACHED_TOKEN_KEYS = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
    "llm.usage.cache_read_input_tokens",
    "gen_ai.usage.input_tokens_details.cached",
)
_REASONING_TOKEN_KEYS = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
    "llm.usage.reasoning_tokens",
)
_TOTAL_TOKEN_KEYS = ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total")
_TTFT_SECONDS_KEYS = ("gen_ai.server.time_to_first_token", "gen_ai.response.time_to_first_chunk")
_CONVERSATION_KEYS = (
    "gen_ai.conversation.id",
    "session.id",
    "traceloop.association.properties.session_id",
)
_USER_KEYS = ("user.id", "enduser.id", "traceloop.association.properties.user_id", "gen_ai.user")
_AGENT_NAME_KEYS = ("gen_ai.agent.name", "agent.name")
_AGENT_ID_KEYS = ("gen_ai.agent.id",)
_TOOL_NAME_KEYS = ("gen_ai.tool.name", "tool.name", "tool_call.function.name")
_TOOL_CALL_ID_KEYS = ("gen_ai.tool.call.id", "tool_call.id")

# OpenInference span kinds and OpenLLMetry request types, as GenAI operation names
_OI_KIND_TO_OPERATION = {
    "LLM": "chat",
    "EMBEDDING": "embeddings",
    "TOOL": "execute_tool",
    "AGENT": "invoke_agent",
    "RETRIEVER": "retrieval",
}
_TL_REQUEST_TYPE_TO_OPERATION = {
    "chat": "chat",
    "completion": "text_completion",
    "embedding": "embeddings",
    "rerank": "rerank",
}
_TL_KIND_TO_OPERATION = {"tool": "execute_tool", "agent": "invoke_agent"}

_OI_INPUT_PREFIX = "llm.input_messages."
_OI_OUTPUT_PREFIX = "llm.output_messages."
_TL_PROMPT_PREFIX = "gen_ai.prompt."
_TL_COMPLETION_PREFIX = "gen_ai.completion."
FLATTENED_PREFIXES = (_OI_INPUT_PREFIX, _OI_OUTPUT_PREFIX, _TL_PROMPT_PREFIX, _TL_COMPLETION_PREFIX)
# wrapper objects OpenInference nests each list element in
_UNWRAP = frozenset({"message", "tool_call", "message_content"})
_TL_INDEXED = re.compile(r"^gen_ai\.(?:prompt|completion)\.\d+\.")
_OI_INDEXED = re.compile(r"^llm\.(?:input|output)_messages\.\d+\.")

# span events that carry message content (older semconv, and the current details event)
_CONTENT_EVENTS = {
    "gen_ai.content.prompt": (("gen_ai.prompt", "input_messages"),),
    "gen_ai.content.completion": (("gen_ai.completion", "output_messages"),),
    "gen_ai.client.inference.operation.details": (
        ("gen_ai.input.messages", "input_messages"),
        ("gen_ai.output.messages", "output_messages"),
        ("gen_ai.system_instructions", "system_instructions"),
    ),
}


@dataclass(slots=True)
class GenAIFields:
    convention: str = ""
    span_kind: str = ""
    operation: str = ""
    provider: str = ""
    request_model: str = ""
    response_model: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    total_tokens: int | None = None
    ttft_ms: float | None = None
    finish_reasons: list[str] = field(default_factory=list)
    conversation_id: str = ""
    user_id: str = ""
    agent_name: str = ""
    agent_id: str = ""
    tool_name: str = ""
    tool_call_id: str = ""
    input_messages: str = ""
    output_messages: str = ""
    system_instructions: str = ""
    tool_arguments: str = ""
    tool_result: str = ""

    @property
    def model(self) -> str:
        """The model that served the call, for pricing: the response model when known."""
        return self.response_model or self.request_model


def payload_text(value: Any) -> str:
    """Payload attribute as text: strings as-is (usually JSON already), structures as JSON."""
    if isinstance(value, str):
        return value
    return json_text(value)


def _take(attrs: dict[str, Any], key: str) -> str:
    """Move a payload attribute out of the map."""
    value = attrs.pop(key, None)
    return "" if value is None else payload_text(value)


def _listify(node: Any) -> Any:
    """Dicts keyed 0..n become lists; OpenInference wrapper objects are unwrapped."""
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_listify(node[k]) for k in sorted(node, key=int)]
        if len(node) == 1:
            (only,) = node
            if only in _UNWRAP:
                return _listify(node[only])
        return {k: _listify(v) for k, v in node.items()}
    return node


def unflatten(attrs: dict[str, Any], prefix: str) -> list[Any]:
    """Reassemble ``prefix.N.a.b = v`` attributes into a JSON-able list and remove them."""
    root: dict[str, Any] = {}
    for key in [k for k in attrs if k.startswith(prefix)]:
        value = attrs.pop(key)
        parts = key[len(prefix) :].split(".")
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    result = _listify(root)
    return result if isinstance(result, list) else [result]


# field name -> attribute keys, best first; one dict lookup per attribute finds its field
_FIELD_KEYS: dict[str, tuple[str, ...]] = {
    "operation": ("gen_ai.operation.name",),
    "provider": _PROVIDER_KEYS,
    "request_model": _REQUEST_MODEL_KEYS,
    "response_model": _RESPONSE_MODEL_KEYS,
    "oi_model": ("llm.model_name",),
    "input_tokens": _INPUT_TOKEN_KEYS,
    "output_tokens": _OUTPUT_TOKEN_KEYS,
    "cached_input_tokens": _CACHED_TOKEN_KEYS,
    "reasoning_tokens": _REASONING_TOKEN_KEYS,
    "total_tokens": _TOTAL_TOKEN_KEYS,
    "ttft_s": _TTFT_SECONDS_KEYS,
    "conversation_id": _CONVERSATION_KEYS,
    "user_id": _USER_KEYS,
    "agent_name": _AGENT_NAME_KEYS,
    "agent_id": _AGENT_ID_KEYS,
    "tool_name": _TOOL_NAME_KEYS,
    "tool_call_id": _TOOL_CALL_ID_KEYS,
    "entity": ("traceloop.entity.name",),
    "oi_kind": ("openinference.span.kind",),
    "tl_kind": ("traceloop.span.kind",),
    "request_type": ("llm.request.type",),
    "finish_reasons": ("gen_ai.response.finish_reasons",),
    "finish_reason": ("gen_ai.response.finish_reason", "llm.finish_reason"),
}
# slot of each typed field in the value list a scan fills (the order of _FIELD_KEYS)
_FIELDS = tuple(_FIELD_KEYS)
N_SLOTS = len(_FIELDS)
# resolve() unpacks the slots positionally: keep the two in step
assert _FIELDS == (
    "operation", "provider", "request_model", "response_model", "oi_model", "input_tokens",
    "output_tokens", "cached_input_tokens", "reasoning_tokens", "total_tokens", "ttft_s",
    "conversation_id", "user_id", "agent_name", "agent_id", "tool_name", "tool_call_id", "entity",
    "oi_kind", "tl_kind", "request_type", "finish_reasons", "finish_reason",
)  # fmt: skip
_DISPATCH: dict[str, tuple[int, int]] = {
    key: (slot, prio) for slot, keys in enumerate(_FIELD_KEYS.values()) for prio, key in enumerate(keys)
}
_OI_MARKERS = frozenset({"openinference.span.kind", "llm.model_name"})
_TL_MARKERS = frozenset({"traceloop.span.kind", "llm.request.type", "traceloop.entity.name"})
_SCAN_PREFIXES = ("gen_ai.", "llm.")

# What one attribute key says about its span, as bits: which convention it belongs to, whether
# it is part of a flattened message list, whether it may hold a payload that moves to a column.
F_OI = 1
F_TL = 2
F_OTEL = 4
F_FLAT = 8
F_PAYLOAD = 16
# every key the payload step may take out of the map when there is no flattened list
PAYLOAD_KEYS = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "tool_call.function.arguments",
        "input.value",
        "output.value",
        "traceloop.entity.input",
        "traceloop.entity.output",
    }
)

Take = Callable[[str, str], str]
"""Removes a payload attribute and returns its text ("" when absent)."""

KeyInfo = tuple[int, int, int]
"""(slot of the typed field the key feeds or -1, its priority for that field, F_* bits)."""

PLAIN_KEY: KeyInfo = (-1, 0, 0)


def _classify(key: str) -> KeyInfo:
    flags = 0
    if key in _OI_MARKERS:
        flags |= F_OI
    elif key in _TL_MARKERS:
        flags |= F_TL
    if key.startswith(_SCAN_PREFIXES):
        if key[0] == "g":  # gen_ai.*
            flags |= F_OTEL
            # only gen_ai.prompt.N.* / gen_ai.completion.N.* are flattened lists
            if key[7:8] in ("p", "c") and _TL_INDEXED.match(key):
                flags |= F_FLAT | F_TL
        elif key.startswith(FLATTENED_PREFIXES) and _OI_INDEXED.match(key):
            flags |= F_FLAT | F_OI
        elif key.startswith("llm.token_count."):
            flags |= F_OI
    if key in PAYLOAD_KEYS:
        flags |= F_PAYLOAD
    hit = _DISPATCH.get(key)
    if hit is None:
        return PLAIN_KEY if not flags else (-1, 0, flags)
    return (hit[0], hit[1], flags)


# Attribute keys repeat across spans (instrumentations use a fixed vocabulary), so each key is
# classified once. Bounded: keys carrying ids or list indexes must not grow it without limit.
_KEY_INFO: dict[str, KeyInfo] = {}
_KEY_INFO_LIMIT = 50_000


def key_info(key: str) -> KeyInfo:
    info = _KEY_INFO.get(key)
    if info is None:
        info = _classify(key)
        if len(_KEY_INFO) >= _KEY_INFO_LIMIT:
            _KEY_INFO.clear()
        _KEY_INFO[key] = info
    return info


def key_info_cache() -> dict[str, KeyInfo]:
    """The shared cache itself, for a builder's inner loop (fill misses with :func:`key_info`)."""
    return _KEY_INFO


def convention(flags: int) -> str:
    """The dialect of a span from the OR of its keys' bits: OpenInference, then OpenLLMetry, then OTel."""
    if flags & F_OI:
        return CONV_OPENINFERENCE
    if flags & F_TL:
        return CONV_OPENLLMETRY
    if flags & F_OTEL:
        return CONV_OTEL
    return ""


def _scan(attrs: dict[str, Any]) -> tuple[list[Any], str, bool]:
    """One pass over the attributes: best value per field slot, the dialect, flattened lists seen."""
    values: list[Any] = [None] * N_SLOTS
    prios = [99] * N_SLOTS
    flags = 0
    for key, value in attrs.items():
        slot, prio, bits = key_info(key)
        flags |= bits
        if slot >= 0 and value is not None and value != "" and prio < prios[slot]:
            values[slot] = value
            prios[slot] = prio
    return values, convention(flags), bool(flags & F_FLAT)


def detect_convention(attrs: dict[str, Any]) -> str:
    return _scan(attrs)[1]


def _str(value: Any) -> str:
    if type(value) is str:
        return value  # type: ignore[no-any-return]
    return "" if value is None else str(value)


def extract_genai(attrs: dict[str, Any], has_flattened: bool | None = None) -> GenAIFields:
    """Typed GenAI fields of one span; payload attributes are removed from ``attrs``.

    ``has_flattened`` is accepted for callers that already know; the single scan over the
    attributes finds flattened ``prefix.N.*`` message lists anyway.
    """
    values, conv, flat = _scan(attrs)
    if not conv:
        return GenAIFields()
    r = resolve(values, conv, None)
    f = GenAIFields(*r[:24])
    _extract_payloads(f, attrs, r[24], r[25], flat)
    return f


Resolved = tuple[Any, ...]
"""``resolve``'s result: the 24 :class:`GenAIFields` values in field order (convention ...
tool_result), then the OpenInference span kind upper-cased and the Traceloop kind lower-cased
(what the payload step needs)."""


def _tokens(value: Any) -> int | None:
    if type(value) is int:
        return value if 0 <= value <= UINT64_MAX else None  # type: ignore[no-any-return]
    return None if value is None else to_int(value)


def resolve(values: list[Any], conv: str, take: Take | None) -> Resolved:
    """Typed fields from the best value per slot (filled by a scan).

    Shared by :func:`extract_genai` and the span row builder's single-pass scan, so both
    resolve precedence, fallbacks and type coercion the same way. Slots hold ``None`` or a
    non-empty value; text fields accept any type (``str()``), as instrumentations disagree.
    With ``take`` (see :func:`take_payloads`) the payload columns are filled too, for spans
    without flattened message lists; without it they are left empty.
    """
    (
        operation,
        provider,
        request_model,
        response_model,
        oi_model,
        input_tokens,
        output_tokens,
        cached_tokens,
        reasoning_tokens,
        total_tokens,
        ttft,
        conversation_id,
        user_id,
        agent_name,
        agent_id,
        tool_name,
        tool_call_id,
        entity,
        oi_kind,
        tl_kind,
        request_type,
        reasons,
        single_reason,
    ) = values
    # the common case of each field first: absent (None), or already the right type
    oi_kind = "" if oi_kind is None else _str(oi_kind)
    tl_kind = "" if tl_kind is None else _str(tl_kind)
    oi_upper = oi_kind.upper() if oi_kind else ""
    tl_lower = tl_kind.lower() if tl_kind else ""

    operation = "" if operation is None else operation if type(operation) is str else str(operation)
    if not operation:
        if oi_kind:
            operation = _OI_KIND_TO_OPERATION.get(oi_upper, "")
        if not operation and request_type is not None:
            operation = _TL_REQUEST_TYPE_TO_OPERATION.get(_str(request_type).lower(), "")
        if not operation and tl_kind:
            operation = _TL_KIND_TO_OPERATION.get(tl_lower, "")

    provider = "" if provider is None else (provider if type(provider) is str else str(provider)).lower()
    if request_model is None:
        request_model = ""
    elif type(request_model) is not str:
        request_model = str(request_model)
    if response_model is None:
        response_model = ""
    elif type(response_model) is not str:
        response_model = str(response_model)
    if oi_model is not None:
        # OpenInference records the one model name it knows; it serves as both
        oi_model = _str(oi_model)
        response_model = response_model or oi_model
        request_model = request_model or oi_model

    if type(input_tokens) is not int or input_tokens < 0:
        input_tokens = _tokens(input_tokens)
    if type(output_tokens) is not int or output_tokens < 0:
        output_tokens = _tokens(output_tokens)
    if cached_tokens is not None:
        cached_tokens = _tokens(cached_tokens)
    if reasoning_tokens is not None:
        reasoning_tokens = _tokens(reasoning_tokens)
    if total_tokens is not None:
        total_tokens = _tokens(total_tokens)
    if total_tokens is None and input_tokens is not None and output_tokens is not None:
        total_tokens = input_tokens + output_tokens
        if total_tokens > UINT64_MAX:
            total_tokens = None
    ttft_ms = None
    if ttft is not None:
        seconds = to_float(ttft)
        ttft_ms = seconds * 1000.0 if seconds is not None else None

    if conversation_id is None:
        conversation_id = ""
    elif type(conversation_id) is not str:
        conversation_id = str(conversation_id)
    if user_id is None:
        user_id = ""
    elif type(user_id) is not str:
        user_id = str(user_id)
    if agent_name is None:
        agent_name = ""
    elif type(agent_name) is not str:
        agent_name = str(agent_name)
    if agent_id is None:
        agent_id = ""
    elif type(agent_id) is not str:
        agent_id = str(agent_id)
    if tool_name is None:
        tool_name = ""
    elif type(tool_name) is not str:
        tool_name = str(tool_name)
    if tool_call_id is None:
        tool_call_id = ""
    elif type(tool_call_id) is not str:
        tool_call_id = str(tool_call_id)
    if tl_kind == "tool" and not tool_name:
        tool_name = _str(entity)
    if tl_kind == "agent" and not agent_name:
        agent_name = _str(entity)

    finish_reasons: list[str]
    if type(reasons) is list:
        finish_reasons = list(reasons)  # a copy: the value may be shared (cached decoding)
        for i, r in enumerate(finish_reasons):
            if type(r) is not str:
                finish_reasons[i] = str(r)
    elif reasons is None:
        single = _str(single_reason)
        finish_reasons = [single] if single else []
    elif isinstance(reasons, str):
        finish_reasons = _parse_str_list(reasons)
    else:
        single = _str(single_reason)
        finish_reasons = [single] if single else []

    if take is None:
        inp = out = system = arguments = result = ""
    else:
        inp, out, system, arguments, result = take_payloads(take, operation, oi_upper, tl_lower)
    return (
        conv,
        oi_kind or tl_kind,
        operation,
        provider,
        request_model,
        response_model,
        input_tokens,
        output_tokens,
        cached_tokens,
        reasoning_tokens,
        total_tokens,
        ttft_ms,
        finish_reasons,
        conversation_id,
        user_id,
        agent_name,
        agent_id,
        tool_name,
        tool_call_id,
        inp,
        out,
        system,
        arguments,
        result,
        oi_upper,
        tl_lower,
    )


def _parse_str_list(text: str) -> list[str]:
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            return [text]
        if isinstance(parsed, list):
            return [str(r) for r in parsed]
    return [text]


def take_payloads(take: Take, operation: str, oi_kind: str, tl_kind: str) -> list[str]:
    """Payload columns of a span without flattened message lists, taken out of its map.

    ``take`` pops one attribute's text (``dict.pop`` of a key -> text map works as is).
    Returns input_messages, output_messages, system_instructions, tool_arguments,
    tool_result. ``oi_kind`` upper-cased, ``tl_kind`` lower-cased.
    """
    payloads = [
        take("gen_ai.input.messages", ""),
        take("gen_ai.output.messages", ""),
        take("gen_ai.system_instructions", ""),
        take("gen_ai.tool.call.arguments", ""),
        take("gen_ai.tool.call.result", ""),
    ]
    _route_payloads(take, payloads, operation, oi_kind, tl_kind, reassembled=False)
    return payloads


def _route_payloads(
    take: Take, payloads: list[str], operation: str, oi_kind: str, tl_kind: str, *, reassembled: bool
) -> None:
    """Fill still-empty payload columns from the convention-specific attributes."""
    # tool spans: OpenInference input/output values, Traceloop entity input/output
    if operation == "execute_tool" or oi_kind == "TOOL" or tl_kind == "tool":
        if not payloads[3]:
            payloads[3] = take("tool_call.function.arguments", "") or (
                take("input.value", "") if oi_kind == "TOOL" else take("traceloop.entity.input", "")
            )
        if not payloads[4]:
            payloads[4] = (
                take("output.value", "") if oi_kind == "TOOL" else take("traceloop.entity.output", "")
            )
        return
    if reassembled:
        # OpenInference LLM spans repeat the whole request/response as input.value and
        # output.value; the message lists, invocation parameters, tools and token counts
        # already hold it. The hot row keeps one copy (the cold tier keeps the span as sent).
        for key, column in (("input.value", 0), ("output.value", 1)):
            if payloads[column]:
                take(key, "")
            else:
                payloads[column] = take(key, "")
        return
    # anything else: the span's raw input/output when no message list said more
    if not payloads[0]:
        payloads[0] = take("input.value", "") or take("traceloop.entity.input", "")
    if not payloads[1]:
        payloads[1] = take("output.value", "") or take("traceloop.entity.output", "")


def _extract_payloads(
    f: GenAIFields, attrs: dict[str, Any], oi_kind: str, tl_kind: str, has_flattened: bool | None
) -> None:
    def take(key: str, _default: str) -> str:
        return _take(attrs, key)

    # OTel GenAI
    f.input_messages = _take(attrs, "gen_ai.input.messages")
    f.output_messages = _take(attrs, "gen_ai.output.messages")
    f.system_instructions = _take(attrs, "gen_ai.system_instructions")
    f.tool_arguments = _take(attrs, "gen_ai.tool.call.arguments")
    f.tool_result = _take(attrs, "gen_ai.tool.call.result")

    if has_flattened is None:
        has_flattened = any(k.startswith(FLATTENED_PREFIXES) for k in attrs)
    reassembled = False
    if has_flattened:
        # OpenInference, then OpenLLMetry flattened message lists
        for prefix, column in (
            (_OI_INPUT_PREFIX, "input_messages"),
            (_TL_PROMPT_PREFIX, "input_messages"),
            (_OI_OUTPUT_PREFIX, "output_messages"),
            (_TL_COMPLETION_PREFIX, "output_messages"),
        ):
            if getattr(f, column):
                continue
            if not any(k.startswith(prefix) and k[len(prefix) : len(prefix) + 1].isdigit() for k in attrs):
                continue
            messages = unflatten(attrs, prefix)
            setattr(f, column, json_text(messages))
            reassembled = reassembled or prefix.startswith("llm.")
            if column == "output_messages" and not f.finish_reasons:
                f.finish_reasons = [
                    str(m["finish_reason"])
                    for m in messages
                    if isinstance(m, dict) and m.get("finish_reason")
                ]

    payloads = [f.input_messages, f.output_messages, f.system_instructions, f.tool_arguments, f.tool_result]
    _route_payloads(take, payloads, f.operation, oi_kind, tl_kind, reassembled=reassembled)
    (f.input_messages, f.output_messages, f.system_instructions, f.tool_arguments, f.tool_result) = payloads


def take_event_payloads(f: GenAIFields, event_name: str, event_attrs: dict[str, Any]) -> None:
    """Content carried in span events moves to the payload columns when they are still empty."""
    for attr_key, column in _CONTENT_EVENTS.get(event_name, ()):
        if attr_key in event_attrs and not getattr(f, column):
            setattr(f, column, payload_text(event_attrs.pop(attr_key)))


CONTENT_EVENT_NAMES = frozenset(_CONTENT_EVENTS)
