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
from dataclasses import dataclass, field
from typing import Any

from spanline.writer.attributes import to_float, to_int

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
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


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


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


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
_DISPATCH: dict[str, tuple[str, int]] = {
    key: (name, prio) for name, keys in _FIELD_KEYS.items() for prio, key in enumerate(keys)
}
_OI_MARKERS = frozenset({"openinference.span.kind", "llm.model_name"})
_TL_MARKERS = frozenset({"traceloop.span.kind", "llm.request.type", "traceloop.entity.name"})
_SCAN_PREFIXES = ("gen_ai.", "llm.")


def _scan(attrs: dict[str, Any]) -> tuple[dict[str, Any], str, bool]:
    """One pass over the attributes: best value per field, the dialect, flattened lists seen."""
    found: dict[str, Any] = {}
    prios: dict[str, int] = {}
    oi = tl = otel = flat = False
    dispatch = _DISPATCH
    for key, value in attrs.items():
        hit = dispatch.get(key)
        if hit is not None:
            name, prio = hit
            if value is not None and value != "" and prio < prios.get(name, 99):
                found[name] = value
                prios[name] = prio
            if key in _OI_MARKERS:
                oi = True
            elif key in _TL_MARKERS:
                tl = True
        if key.startswith(_SCAN_PREFIXES):
            if key[0] == "g":  # gen_ai.*
                otel = True
                # only gen_ai.prompt.N.* / gen_ai.completion.N.* are flattened lists
                if key[7:8] in ("p", "c") and _TL_INDEXED.match(key):
                    flat = tl = True
            elif key.startswith(FLATTENED_PREFIXES) and _OI_INDEXED.match(key):
                flat = oi = True
            elif key.startswith("llm.token_count."):
                oi = True
        elif key in _TL_MARKERS:
            tl = True
    conv = CONV_OPENINFERENCE if oi else CONV_OPENLLMETRY if tl else CONV_OTEL if otel else ""
    return found, conv, flat


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
    f = GenAIFields()
    found, conv, flat = _scan(attrs)
    if not conv:
        return f
    f.convention = conv
    get = found.get
    oi_kind = _str(get("oi_kind"))
    tl_kind = _str(get("tl_kind"))
    f.span_kind = oi_kind or tl_kind

    operation = _str(get("operation"))
    if not operation and oi_kind:
        operation = _OI_KIND_TO_OPERATION.get(oi_kind.upper(), "")
    if not operation:
        operation = _TL_REQUEST_TYPE_TO_OPERATION.get(_str(get("request_type")).lower(), "")
    if not operation and tl_kind:
        operation = _TL_KIND_TO_OPERATION.get(tl_kind.lower(), "")
    f.operation = operation

    f.provider = _str(get("provider")).lower()
    f.request_model = _str(get("request_model"))
    f.response_model = _str(get("response_model"))
    oi_model = _str(get("oi_model"))
    if oi_model:
        # OpenInference records the one model name it knows; it serves as both
        f.response_model = f.response_model or oi_model
        f.request_model = f.request_model or oi_model

    f.input_tokens = to_int(get("input_tokens"))
    f.output_tokens = to_int(get("output_tokens"))
    f.cached_input_tokens = to_int(get("cached_input_tokens"))
    f.reasoning_tokens = to_int(get("reasoning_tokens"))
    f.total_tokens = to_int(get("total_tokens"))
    if f.total_tokens is None and f.input_tokens is not None and f.output_tokens is not None:
        f.total_tokens = f.input_tokens + f.output_tokens

    ttft = get("ttft_s")
    seconds = to_float(ttft) if ttft is not None else None
    f.ttft_ms = seconds * 1000.0 if seconds is not None else None

    f.conversation_id = _str(get("conversation_id"))
    f.user_id = _str(get("user_id"))
    f.agent_name = _str(get("agent_name"))
    f.agent_id = _str(get("agent_id"))
    f.tool_name = _str(get("tool_name"))
    f.tool_call_id = _str(get("tool_call_id"))
    if tl_kind == "tool" and not f.tool_name:
        f.tool_name = _str(get("entity"))
    if tl_kind == "agent" and not f.agent_name:
        f.agent_name = _str(get("entity"))

    reasons = get("finish_reasons")
    if isinstance(reasons, list):
        f.finish_reasons = [r if isinstance(r, str) else str(r) for r in reasons]
    elif isinstance(reasons, str):
        f.finish_reasons = _parse_str_list(reasons)
    else:
        single = _str(get("finish_reason"))
        if single:
            f.finish_reasons = [single]

    _extract_payloads(f, attrs, oi_kind.upper(), tl_kind.lower(), flat)
    return f


def _parse_str_list(text: str) -> list[str]:
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            return [text]
        if isinstance(parsed, list):
            return [str(r) for r in parsed]
    return [text]


def _extract_payloads(
    f: GenAIFields, attrs: dict[str, Any], oi_kind: str, tl_kind: str, has_flattened: bool | None
) -> None:
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
            setattr(f, column, _json(messages))
            reassembled = reassembled or prefix.startswith("llm.")
            if column == "output_messages" and not f.finish_reasons:
                f.finish_reasons = [
                    str(m["finish_reason"])
                    for m in messages
                    if isinstance(m, dict) and m.get("finish_reason")
                ]

    # tool spans: OpenInference input/output values, Traceloop entity input/output
    is_tool = f.operation == "execute_tool" or oi_kind == "TOOL" or tl_kind == "tool"
    if is_tool:
        if not f.tool_arguments:
            f.tool_arguments = _take(attrs, "tool_call.function.arguments") or (
                _take(attrs, "input.value") if oi_kind == "TOOL" else _take(attrs, "traceloop.entity.input")
            )
        if not f.tool_result:
            f.tool_result = (
                _take(attrs, "output.value") if oi_kind == "TOOL" else _take(attrs, "traceloop.entity.output")
            )
        return
    if reassembled:
        # OpenInference LLM spans repeat the whole request/response as input.value and
        # output.value; the message lists, invocation parameters, tools and token counts
        # already hold it. The hot row keeps one copy (the cold tier keeps the span as sent).
        for key, column in (("input.value", "input_messages"), ("output.value", "output_messages")):
            if getattr(f, column):
                attrs.pop(key, None)
            else:
                setattr(f, column, _take(attrs, key))
        return
    # anything else: the span's raw input/output when no message list said more
    if not f.input_messages:
        f.input_messages = _take(attrs, "input.value") or _take(attrs, "traceloop.entity.input")
    if not f.output_messages:
        f.output_messages = _take(attrs, "output.value") or _take(attrs, "traceloop.entity.output")


def take_event_payloads(f: GenAIFields, event_name: str, event_attrs: dict[str, Any]) -> None:
    """Content carried in span events moves to the payload columns when they are still empty."""
    for attr_key, column in _CONTENT_EVENTS.get(event_name, ()):
        if attr_key in event_attrs and not getattr(f, column):
            setattr(f, column, payload_text(event_attrs.pop(attr_key)))


CONTENT_EVENT_NAMES = frozenset(_CONTENT_EVENTS)
