"""OTLP spans -> row tuples of the ``spans`` table, one pass over each span's attributes.

The writer must keep up with tens of thousands of spans per second on one core, and reading
a protobuf field through the Python runtime costs about as much as a dict operation, so the
common span is handled by a single loop that reads each attribute once and, in the same
step, fills the map cell, picks the typed GenAI fields (per-key facts are cached: the key
vocabulary is small) and notes which convention the span speaks.

Spans the single pass does not cover go through the general path, which is the reference
behaviour (``attributes_dict`` + ``extract_genai`` + event handling): spans with events or
links, flattened message lists (OpenInference/OpenLLMetry reassembly), repeated attribute
keys, and non-finite floats in payload keys. Both paths resolve fields with the same
:func:`~spanline.spans.genai_fields.resolve_fields` and move payloads with the same
:func:`~spanline.spans.genai_fields.extract_payloads`, and a differential test feeds both
the same randomised corpus.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from itertools import accumulate
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.message import DecodeError
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

from spanline.spans.attributes import attributes_dict, json_text, to_text
from spanline.spans.genai_fields import (
    CONTENT_EVENT_NAMES,
    CONV_OPENINFERENCE,
    CONV_OPENLLMETRY,
    CONV_OTEL,
    F_FLAT,
    F_OI,
    F_OTEL,
    F_PAYLOAD,
    F_TL,
    N_SLOTS,
    GenAIFields,
    extract_genai,
    key_info,
    key_info_cache,
    resolve,
    take_event_payloads,
)
from spanline.spans.metrics import COST_UNKNOWN_MODEL, SPAN_BUILD_FALLBACKS
from spanline.spans.object_store import REF_PREFIX
from spanline.spans.otlp_mirror import MirrorSpan, MirrorTracesData, decode_key_value
from spanline.spans.pricing import ModelPrice, PricingTable, metric_provider
from spanline.spans.row_errors import TIME_NS_MAX, RowBuildError, hex_id, time_ns

TABLE = "spans"
TS = pa.timestamp("ns", tz="UTC")
STR = pa.string()
MAP = pa.map_(pa.string(), pa.string())
STR_LIST = pa.list_(pa.string())

SPAN_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("project_id", STR),
    ("trace_id", STR),
    ("span_id", STR),
    ("parent_span_id", STR),
    ("trace_state", STR),
    ("service_name", STR),
    ("scope_name", STR),
    ("scope_version", STR),
    ("name", STR),
    ("kind", STR),
    ("start_time", TS),
    ("end_time", TS),
    ("duration_ns", pa.uint64()),
    ("status_code", STR),
    ("status_message", STR),
    ("genai_convention", STR),
    ("genai_span_kind", STR),
    ("operation", STR),
    ("provider", STR),
    ("request_model", STR),
    ("response_model", STR),
    ("input_tokens", pa.uint64()),
    ("output_tokens", pa.uint64()),
    ("cached_input_tokens", pa.uint64()),
    ("reasoning_tokens", pa.uint64()),
    ("total_tokens", pa.uint64()),
    ("cost_usd", pa.float64()),
    ("pricing_version", STR),
    ("ttft_ms", pa.float64()),
    ("finish_reasons", STR_LIST),
    ("conversation_id", STR),
    ("user_id", STR),
    ("agent_name", STR),
    ("agent_id", STR),
    ("tool_name", STR),
    ("tool_call_id", STR),
    ("input_messages", STR),
    ("output_messages", STR),
    ("system_instructions", STR),
    ("tool_arguments", STR),
    ("tool_result", STR),
    ("input_messages_bytes", pa.uint64()),
    ("output_messages_bytes", pa.uint64()),
    ("system_instructions_bytes", pa.uint64()),
    ("tool_arguments_bytes", pa.uint64()),
    ("tool_result_bytes", pa.uint64()),
    ("attributes", MAP),
    ("resource_attributes", MAP),
    ("events", STR),
    ("links", STR),
    ("ingested_at", TS),
)

_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS = ("UNSET", "OK", "ERROR")
_KIND_NAMES = dict(enumerate(_KINDS))
_STATUS_NAMES = dict(enumerate(_STATUS))
_Z16 = bytes(16)
_Z8 = bytes(8)
Genai = tuple[Any, ...]
"""The GenAI values of one span as :func:`~spanline.spans.genai_fields.resolve` returns them:
:class:`GenAIFields` order (convention ... tool_result), then two values the row ignores."""


def _fields_tuple(f: GenAIFields) -> Genai:
    return (
        f.convention,
        f.span_kind,
        f.operation,
        f.provider,
        f.request_model,
        f.response_model,
        f.input_tokens,
        f.output_tokens,
        f.cached_input_tokens,
        f.reasoning_tokens,
        f.total_tokens,
        f.ttft_ms,
        f.finish_reasons,
        f.conversation_id,
        f.user_id,
        f.agent_name,
        f.agent_id,
        f.tool_name,
        f.tool_call_id,
        f.input_messages,
        f.output_messages,
        f.system_instructions,
        f.tool_arguments,
        f.tool_result,
        "",
        "",
    )


_NO_GENAI = _fields_tuple(GenAIFields())  # every non-GenAI span on the fast path
_NO_PRIOS: list[int] = []
_F_ODD = 1 << 8  # beyond genai_fields' F_* bits: a float in a payload key
_KEY_INFOS = key_info_cache()
_WHICH_ONEOF = MirrorSpan.WhichOneof
_HAS_FIELD = MirrorSpan.HasField
# decoded attributes by their serialized bytes: most repeat exactly (same key, same value)
_ENTRY_MAX_BYTES = 256
_ENTRY_CACHE_LIMIT = 50_000
_VALUES_PER_KEY = 256  # distinct cached values per key before the key is no longer cached
Entry = tuple[str, str, Any, tuple[int, int, int] | None]
"""(key, map text, value, (slot or -1, priority, F_* bits) or None when the key is plain)."""
_EMPTY_PAYLOAD = ("", 0)
_UNPRICED = ModelPrice("", "", 0.0, 0.0)  # cache sentinel: looked up, no price
_PRICE_CACHE_LIMIT = 10_000

Offload = Callable[[str], tuple[str, int]]


_COLUMN_NAMES = [name for name, _ in SPAN_COLUMNS]
_TRACE = _COLUMN_NAMES.index("trace_id")
_ATTRS = _COLUMN_NAMES.index("attributes")
_RES = _COLUMN_NAMES.index("resource_attributes")
_REASONS = _COLUMN_NAMES.index("finish_reasons")
_RES_INDEX = -1  # pseudo column: the resource (index into the batch's resource maps) of a block
# columns whose value is the same for every span of one ScopeSpans block, in _run_values order
_BLOCK_COLUMNS = (
    _COLUMN_NAMES.index("project_id"),
    _COLUMN_NAMES.index("service_name"),
    _COLUMN_NAMES.index("scope_name"),
    _COLUMN_NAMES.index("scope_version"),
    _COLUMN_NAMES.index("ingested_at"),
    _RES_INDEX,
)
_BLOCK_TYPES = (STR, STR, STR, STR, TS, pa.int32())


def _offsets(counts: list[int]) -> pa.Array:
    return pa.array(list(accumulate(counts, initial=0)), type=pa.int32())


def _map_array(counts: list[int], keys: list[str], values: list[str]) -> pa.Array:
    return pa.MapArray.from_arrays(_offsets(counts), pa.array(keys, STR), pa.array(values, STR))


_BLOCK_INDEXES = frozenset(i for i in _BLOCK_COLUMNS if i >= 0) | {_RES}


def _table(
    per_row: dict[int, pa.Array], run_ends: list[int], run_values: Any, resources: pa.Array
) -> pa.Table:
    """The batch's table: per-row columns as given, block columns run-end decoded.

    ``run_values`` holds, per block of rows from one ScopeSpans, the values in
    ``_BLOCK_COLUMNS`` order (the last one indexes ``resources``, one map per resource).
    """
    ends = pa.array(run_ends, pa.int32())
    blocks = {
        column: pc.run_end_decode(pa.RunEndEncodedArray.from_arrays(ends, pa.array(values, typ)))
        for column, typ, values in zip(_BLOCK_COLUMNS, _BLOCK_TYPES, run_values, strict=True)
    }
    arrays = []
    for i in range(len(SPAN_COLUMNS)):
        if i == _RES:
            arrays.append(resources.take(blocks[_RES_INDEX]))
        elif i in blocks:
            arrays.append(blocks[i])
        else:
            arrays.append(per_row[i])
    return pa.Table.from_arrays(arrays, names=_COLUMN_NAMES)


def resource_entry(resource: Resource) -> tuple[str, list[str], list[str]]:
    """(service name, map keys, map texts) of a span block's resource."""
    attrs = attributes_dict(resource.attributes)
    return (
        to_text(attrs.get("service.name", "")),
        list(attrs),
        [v if type(v) is str else to_text(v) for v in attrs.values()],
    )


def _invalid(exc: Exception) -> RowBuildError:
    return RowBuildError(TABLE, f"not a valid TracesData protobuf: {exc}")


class SpanBuilder:
    """A batch of ``spans`` rows, stored by column, built from serialized ``TracesData``.

    One Python list per column, appended span by span: no per-row container is created,
    so rows add no work for the cyclic GC (row tuples were ~20% of building through GC
    traversals) and ``to_arrow`` needs no transposition. The list-valued columns are kept
    flat: ``attributes``, ``resource_attributes`` and ``finish_reasons`` hold each row's
    entry count, their entries are in the flat lists alongside.
    """

    def __init__(self, pricing: PricingTable, offload: Offload, *, single_pass: bool = True) -> None:
        """``single_pass=False`` sends every span through the general path (the reference)."""
        self.pricing = pricing
        self.offload = offload
        self.single_pass = single_pass
        # (provider, model) -> price or _UNPRICED; saves the table's lookup and a call per span
        self._prices: dict[tuple[str, str], ModelPrice] = {}
        self._unknown: dict[str, Any] = {}  # provider -> its COST_UNKNOWN_MODEL child
        self._entries: dict[bytes, Entry] = {}
        self._values_per_key: dict[str, int] = {}
        self.clear()

    def clear(self) -> None:
        # per-row columns (the block columns below stay empty in here)
        self._cols: tuple[list[Any], ...] = tuple([] for _ in SPAN_COLUMNS)
        self._attr_keys: list[str] = []
        self._attr_values: list[str] = []
        self._reasons: list[str] = []
        # one entry per resource: its map
        self._res_counts: list[int] = []
        self._res_keys: list[str] = []
        self._res_values: list[str] = []
        # one entry per block of rows from one ScopeSpans: where the block ends and the
        # values its rows share, expanded in Arrow (run-end decoding) instead of per row
        self._run_ends: list[int] = []
        self._run_values: tuple[list[Any], ...] = tuple([] for _ in _BLOCK_COLUMNS)

    def __len__(self) -> int:
        return len(self._cols[_TRACE])

    def add(self, value: bytes, project_id: str, received_at_ns: int) -> int:
        """Append the rows of one serialized ``TracesData``; returns how many.

        All or nothing: if any span cannot be stored the batch is left as it was and the
        error (:class:`RowBuildError`, or an unexpected one) propagates.
        """
        before = len(self)
        attrs, reasons, resources, res_entries, runs = (
            len(self._attr_keys),
            len(self._reasons),
            len(self._res_counts),
            len(self._res_keys),
            len(self._run_ends),
        )
        try:
            self._build(value, project_id, received_at_ns)
        except BaseException:
            for col in self._cols:
                del col[before:]
            del self._attr_keys[attrs:], self._attr_values[attrs:], self._reasons[reasons:]
            del self._res_counts[resources:], self._res_keys[res_entries:], self._res_values[res_entries:]
            del self._run_ends[runs:]
            for col in self._run_values:
                del col[runs:]
            raise
        return len(self) - before

    def to_arrow(self) -> pa.Table:
        cols = self._cols
        per_row: dict[int, pa.Array] = {
            _ATTRS: _map_array(cols[_ATTRS], self._attr_keys, self._attr_values),
            _REASONS: pa.ListArray.from_arrays(_offsets(cols[_REASONS]), pa.array(self._reasons, STR)),
        }
        for i, (_, typ) in enumerate(SPAN_COLUMNS):
            if i not in per_row and i not in _BLOCK_INDEXES:
                per_row[i] = pa.array(cols[i], type=typ)
        return _table(
            per_row,
            self._run_ends,
            self._run_values,
            _map_array(self._res_counts, self._res_keys, self._res_values),
        )

    def take(self) -> pa.Table:
        """The batch as one table, the builder emptied (as :meth:`CompiledSpanBuilder.take`)."""
        table = self.to_arrow()
        self.clear()
        return table

    def _price(self, provider: str, model: str) -> ModelPrice:
        price = self.pricing.lookup(provider, model) or _UNPRICED
        if len(self._prices) >= _PRICE_CACHE_LIMIT:
            self._prices.clear()
        self._prices[(provider, model)] = price
        return price

    def _count_unknown(self, provider: str) -> None:
        child = self._unknown.get(provider)
        if child is None:
            if len(self._unknown) >= _PRICE_CACHE_LIMIT:
                self._unknown.clear()
            child = self._unknown[provider] = COST_UNKNOWN_MODEL.labels(provider=metric_provider(provider))
        child.inc()

    def _entry(self, raw: bytes) -> Entry:
        """Decode one serialized attribute and classify its key (cached when small)."""
        try:
            key, text, val = decode_key_value(raw)
        except DecodeError as exc:
            raise _invalid(exc) from None
        info = _KEY_INFOS.get(key)
        slot, prio, bits = info if info is not None else key_info(key)
        if bits & F_PAYLOAD and type(val) is float:
            bits |= _F_ODD  # payload text of NaN/inf differs from map text: general path
        if val is None or val == "":
            slot = -1  # an empty value never fills a typed field
        entry: Entry = (key, text, val, None if slot < 0 and not bits else (slot, prio, bits))
        if len(raw) <= _ENTRY_MAX_BYTES:
            # keys whose values keep changing (ids, counts) are not worth caching: each entry
            # would be a new object for the GC to track and memory to hold, never hit again
            seen = self._values_per_key.get(key, 0)
            if seen < _VALUES_PER_KEY:
                cache = self._entries
                if len(cache) >= _ENTRY_CACHE_LIMIT:
                    cache.clear()
                    self._values_per_key.clear()
                cache[raw] = entry
                self._values_per_key[key] = seen + 1
        return entry

    def _build(self, value: bytes, project_id: str, received_at_ns: int) -> None:
        """Append one serialized ``TracesData``; :class:`RowBuildError` if it cannot be stored."""
        traces = MirrorTracesData()
        try:
            traces.ParseFromString(value)
        except (DecodeError, ValueError) as exc:
            raise _invalid(exc) from None
        if not project_id:
            raise RowBuildError(TABLE, "project id is empty")
        (
            _,  # block column
            c_trace,
            c_span,
            c_parent,
            c_trace_state,
            _,  # block column
            _,  # block column
            _,  # block column
            c_name,
            c_kind,
            c_start,
            c_end,
            c_duration,
            c_status_code,
            c_status_message,
            c_convention,
            c_span_kind,
            c_operation,
            c_provider,
            c_request_model,
            c_response_model,
            c_input_tokens,
            c_output_tokens,
            c_cached_tokens,
            c_reasoning_tokens,
            c_total_tokens,
            c_cost,
            c_pricing_version,
            c_ttft,
            c_reasons,
            c_conversation,
            c_user,
            c_agent_name,
            c_agent_id,
            c_tool_name,
            c_tool_call_id,
            c_input_messages,
            c_output_messages,
            c_system,
            c_tool_arguments,
            c_tool_result,
            c_input_bytes,
            c_output_bytes,
            c_system_bytes,
            c_arguments_bytes,
            c_result_bytes,
            c_attributes,
            _,  # block column
            c_events,
            c_links,
            _,  # block column
        ) = self._cols
        attr_keys = self._attr_keys
        attr_values = self._attr_values
        reasons = self._reasons
        run_ends = self._run_ends
        run_project, run_service, run_scope_name, run_scope_version, run_ingested, run_resource = (
            self._run_values
        )
        offload = self.offload
        prices = self._prices
        version = self.pricing.version
        entries = self._entries
        entry_of = self._entry
        kind_names = _KIND_NAMES
        status_names = _STATUS_NAMES
        which_extras = _WHICH_ONEOF
        has_field = _HAS_FIELD
        general_only = not self.single_pass
        real: TracesData | None = None  # the message in the real schema, for the general path
        for ri, rs in enumerate(traces.resource_spans[:]):
            service, res_keys, res_values = resource_entry(rs.resource)
            resource = len(self._res_counts)
            self._res_counts.append(len(res_keys))
            self._res_keys.extend(res_keys)
            self._res_values.extend(res_values)
            for si, ss in enumerate(rs.scope_spans[:]):
                scope = ss.scope
                scope_name = scope.name
                scope_version = scope.version
                block_start = len(c_trace)
                for pi, span in enumerate(ss.spans[:]):
                    raw = span.trace_id
                    trace_id = (
                        raw.hex()
                        if len(raw) == 16 and raw != _Z16
                        else hex_id(raw, 16, "trace_id", TABLE, required=True)
                    )
                    raw = span.span_id
                    span_id = (
                        raw.hex()
                        if len(raw) == 8 and raw != _Z8
                        else hex_id(raw, 8, "span_id", TABLE, required=True)
                    )
                    raw = span.parent_span_id
                    parent = (
                        raw.hex()
                        if len(raw) == 8 and raw != _Z8
                        else hex_id(raw, 8, "parent_span_id", TABLE, required=False)
                    )
                    start = span.start_time_unix_nano
                    end = span.end_time_unix_nano
                    if start == 0:
                        raise RowBuildError(TABLE, "span start time is 0")
                    if start > TIME_NS_MAX:
                        time_ns(start, "span start time", TABLE)  # raises
                    if end < start:
                        end = start
                    elif end > TIME_NS_MAX:
                        time_ns(end, "span end time", TABLE)  # raises

                    events_json = links_json = ""
                    attrs_before = len(attr_keys)
                    general = general_only or which_extras(span, "extras") is not None
                    if not general:
                        # the single pass: map text, best value per typed field, dialect bits
                        texts: dict[str, str] = {}
                        values: list[Any] | None = None
                        prios: list[int] = _NO_PRIOS
                        flags = 0
                        raws = span.attributes[:]
                        for raw in raws:
                            entry = entries.get(raw) if len(raw) <= _ENTRY_MAX_BYTES else None
                            if entry is None:
                                entry = entry_of(raw)
                            key, text, val, info = entry
                            texts[key] = text
                            if info is not None:
                                slot, prio, bits = info
                                flags |= bits
                                if slot >= 0:
                                    if values is None:
                                        values = [None] * N_SLOTS
                                        prios = [99] * N_SLOTS
                                    if prio < prios[slot]:
                                        values[slot] = val
                                        prios[slot] = prio
                        # flattened lists, odd payloads and repeated keys: the general path
                        general = bool(flags & (F_FLAT | _F_ODD)) or len(texts) != len(raws)
                    if general:
                        if real is None:
                            real = TracesData()
                            try:
                                real.ParseFromString(value)
                            except (DecodeError, ValueError) as exc:
                                raise RowBuildError(
                                    TABLE, f"not a valid TracesData protobuf: {exc}"
                                ) from None
                        real_span = real.resource_spans[ri].scope_spans[si].spans[pi]
                        g, events_json, links_json = self._general(real_span, attr_keys, attr_values)
                    elif flags & (F_OI | F_TL | F_OTEL):
                        conv = (
                            CONV_OPENINFERENCE
                            if flags & F_OI
                            else CONV_OPENLLMETRY
                            if flags & F_TL
                            else CONV_OTEL
                        )
                        g = resolve(
                            values if values is not None else [None] * N_SLOTS,
                            conv,
                            texts.pop if flags & F_PAYLOAD else None,
                        )
                        attr_keys.extend(texts)
                        attr_values.extend(texts.values())
                    else:
                        g = _NO_GENAI
                        attr_keys.extend(texts)
                        attr_values.extend(texts.values())
                    (
                        convention,
                        span_kind,
                        operation,
                        provider,
                        request_model,
                        response_model,
                        itok,
                        otok,
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
                        in_msg,
                        out_msg,
                        sys_msg,
                        args,
                        result,
                        _,
                        _,
                    ) = g

                    cost = None
                    if itok is not None or otok is not None:
                        model = response_model or request_model
                        price = prices.get((provider, model))
                        if price is None:
                            price = self._price(provider, model)
                        if price is _UNPRICED:
                            self._count_unknown(provider)
                        else:
                            cost = price.cost(itok, otok, cached_tokens, reasoning_tokens)

                    in_msg, in_len = offload(in_msg) if in_msg else _EMPTY_PAYLOAD
                    out_msg, out_len = offload(out_msg) if out_msg else _EMPTY_PAYLOAD
                    sys_msg, sys_len = offload(sys_msg) if sys_msg else _EMPTY_PAYLOAD
                    args, args_len = offload(args) if args else _EMPTY_PAYLOAD
                    result, result_len = offload(result) if result else _EMPTY_PAYLOAD

                    kind = span.kind
                    if has_field(span, "status"):
                        status = span.status
                        code = status.code
                        status_message = status.message
                    else:
                        code = 0
                        status_message = ""
                    c_trace.append(trace_id)
                    c_span.append(span_id)
                    c_parent.append(parent)
                    c_trace_state.append(span.trace_state)
                    c_name.append(span.name)
                    c_kind.append(kind_names.get(kind) or str(kind))
                    c_start.append(start)
                    c_end.append(end)
                    c_duration.append(end - start)
                    c_status_code.append(status_names.get(code) or str(code))
                    c_status_message.append(status_message)
                    c_convention.append(convention)
                    c_span_kind.append(span_kind)
                    c_operation.append(operation)
                    c_provider.append(provider)
                    c_request_model.append(request_model)
                    c_response_model.append(response_model)
                    c_input_tokens.append(itok)
                    c_output_tokens.append(otok)
                    c_cached_tokens.append(cached_tokens)
                    c_reasoning_tokens.append(reasoning_tokens)
                    c_total_tokens.append(total_tokens)
                    c_cost.append(cost)
                    c_pricing_version.append(version if cost is not None else "")
                    c_ttft.append(ttft_ms)
                    c_reasons.append(len(finish_reasons))
                    reasons.extend(finish_reasons)
                    c_conversation.append(conversation_id)
                    c_user.append(user_id)
                    c_agent_name.append(agent_name)
                    c_agent_id.append(agent_id)
                    c_tool_name.append(tool_name)
                    c_tool_call_id.append(tool_call_id)
                    c_input_messages.append(in_msg)
                    c_output_messages.append(out_msg)
                    c_system.append(sys_msg)
                    c_tool_arguments.append(args)
                    c_tool_result.append(result)
                    c_input_bytes.append(in_len)
                    c_output_bytes.append(out_len)
                    c_system_bytes.append(sys_len)
                    c_arguments_bytes.append(args_len)
                    c_result_bytes.append(result_len)
                    c_attributes.append(len(attr_keys) - attrs_before)
                    c_events.append(events_json)
                    c_links.append(links_json)
                rows_now = len(c_trace)
                if rows_now > block_start:
                    run_ends.append(rows_now)
                    run_project.append(project_id)
                    run_service.append(service)
                    run_scope_name.append(scope_name)
                    run_scope_version.append(scope_version)
                    run_ingested.append(received_at_ns)
                    run_resource.append(resource)

    @staticmethod
    def _general(span: Span, attr_keys: list[str], attr_values: list[str]) -> tuple[Genai, str, str]:
        """The reference path: attributes as a dict, :func:`extract_genai`, events and links."""
        attrs = attributes_dict(span.attributes)
        g = extract_genai(attrs)
        events_json = ""
        if span.events:
            events = []
            for ev in span.events:
                ev_attrs = attributes_dict(ev.attributes)
                if g.convention and ev.name in CONTENT_EVENT_NAMES:
                    take_event_payloads(g, ev.name, ev_attrs)
                events.append({"time_unix_nano": ev.time_unix_nano, "name": ev.name, "attributes": ev_attrs})
            events_json = json_text(events)
        links_json = ""
        if span.links:
            links_json = json_text(
                [
                    {
                        "trace_id": ln.trace_id.hex(),
                        "span_id": ln.span_id.hex(),
                        "trace_state": ln.trace_state,
                        "attributes": attributes_dict(ln.attributes),
                    }
                    for ln in span.links
                ]
            )
        for key, value in attrs.items():
            attr_keys.append(key)
            attr_values.append(value if type(value) is str else to_text(value))
        return _fields_tuple(g), events_json, links_json


try:  # the compiled builder (setup.py); the Python builder above is the reference
    from spanline.spans import wire_spans as _wire  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - an install without a C compiler
    _wire = None

if _wire is not None and (
    _wire.KEY_BITS
    != {
        "F_OI": F_OI,
        "F_TL": F_TL,
        "F_OTEL": F_OTEL,
        "F_FLAT": F_FLAT,
        "F_PAYLOAD": F_PAYLOAD,
        "F_ODD": _F_ODD,
    }
    or _wire.CONVENTIONS != (CONV_OPENINFERENCE, CONV_OPENLLMETRY, CONV_OTEL)
):
    # the C copies of these constants were built from other sources: rows would be wrong
    raise ImportError("spanline.spans.wire_spans does not match genai_fields; rebuild it (make)")
COMPILED_AVAILABLE = _wire is not None


def compiled_module() -> Any:
    """The compiled ``wire_spans`` module (spans and scores); None without a C compiler."""
    return _wire


_RESOURCE_CACHE_LIMIT = 1024
_WIRE_ARROW = {"ts": TS, "u64": pa.uint64(), "f64": pa.float64()}
Buffer = Any  # bytes, or memory the compiled builder handed over (the buffer protocol)


def _buffer_array(typ: pa.DataType, n: int, offsets_or_values: Buffer, data: Buffer | None) -> pa.Array:
    if data is None:  # 8-byte values, no nulls
        return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(offsets_or_values)])
    return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(offsets_or_values), pa.py_buffer(data)])


def wire_arrays(
    buffers: dict[str, tuple[Any, ...]], n: int, names: list[str] | None = None
) -> dict[int, pa.Array]:
    """Arrow arrays over a compiled builder's buffers (no per-value conversion), by their
    index in ``names`` (the span columns' by default)."""
    names = _COLUMN_NAMES if names is None else names
    out: dict[int, pa.Array] = {}
    for name, spec in buffers.items():
        kind = spec[0]
        if kind == "str":
            array = _buffer_array(STR, n, spec[1], spec[2])
        elif kind == "map":
            entries = len(spec[2]) // 4 - 1
            array = pa.MapArray.from_arrays(
                _buffer_array(pa.int32(), n + 1, spec[1], None),
                _buffer_array(STR, entries, spec[2], spec[3]),
                _buffer_array(STR, entries, spec[4], spec[5]),
            )
        elif kind == "list":
            items = len(spec[2]) // 4 - 1
            array = pa.ListArray.from_arrays(
                _buffer_array(pa.int32(), n + 1, spec[1], None), _buffer_array(STR, items, spec[2], spec[3])
            )
        else:
            validity = None if spec[2] is None else pa.py_buffer(spec[2])
            array = pa.Array.from_buffers(_WIRE_ARROW[kind], n, [validity, pa.py_buffer(spec[1])])
        out[names.index(name)] = array
    return out


class CompiledSpanBuilder:
    """:class:`SpanBuilder`'s interface over the compiled ``wire_spans`` builder.

    Messages outside the compiled fast subset (or that fail in it) are given to a
    :class:`SpanBuilder`, which accepts them or raises its own error; ``to_arrow``
    concatenates both. The GenAI rules, pricing and the claim check are the Python
    builder's, called from the compiled loop.
    """

    def __init__(self, pricing: PricingTable, offload: Offload, offload_threshold: int | None) -> None:
        if _wire is None:
            raise RuntimeError(
                "spanline.spans.wire_spans is not built (it needs a C compiler at install: make, or "
                "pip install -e .); writer.span_builder=auto or python runs without it"
            )
        self.reference = ref = SpanBuilder(pricing, offload)
        self._resources: dict[bytes, tuple[str, list[str], list[str]] | None] = {}
        self._real: tuple[bytes, TracesData] | None = None
        self._wire = _wire.WireSpans(
            key_info=key_info,
            resolve=resolve,
            decode_key_value=decode_key_value,
            general=self._general,
            resource_of=self._resource,
            price_of=ref._price,
            count_unknown=ref._count_unknown,
            prices=ref._prices,
            unpriced=_UNPRICED,
            pricing_version=pricing.version,
            offload=offload,
            offload_threshold=sys.maxsize if offload_threshold is None else offload_threshold,
            ref_prefix=REF_PREFIX,
            n_slots=N_SLOTS,
            kind_names=_KINDS,
            status_names=_STATUS,
        )

    def __len__(self) -> int:
        return len(self._wire) + len(self.reference)

    def clear(self) -> None:
        self._wire.clear()
        self.reference.clear()

    def add(self, value: bytes, project_id: str, received_at_ns: int) -> int:
        """As :meth:`SpanBuilder.add`."""
        added: int = self._wire.add(value, project_id, received_at_ns)
        self._real = None
        if added >= 0:
            return added
        SPAN_BUILD_FALLBACKS.labels(reason="outside_fast_subset" if added == -1 else "error").inc()
        return self.reference.add(value, project_id, received_at_ns)

    def to_arrow(self) -> pa.Table:
        """The batch as one table (copied: the builder keeps it)."""
        return self._arrow(hand_over=False)

    def take(self) -> pa.Table:
        """The batch as one table, handed over: the builder is empty afterwards.

        The compiled rows' column memory moves into the table without a copy, so a batch
        exists once instead of twice while it is converted, and the builder does not keep
        the doubled capacity of its biggest batch between batches (~40 MB each in the writer
        and the coldtier under a heavy-span backlog).
        """
        table = self._arrow(hand_over=True)
        self.reference.clear()
        return table

    def _arrow(self, *, hand_over: bool) -> pa.Table:
        w = self._wire
        tables = []
        if len(w):
            n, run_ends = len(w), w.run_ends  # before a hand-over empties the builder
            resources = _map_array(w.res_counts, w.res_keys, w.res_values)
            run_values = (
                w.run_project, w.run_service, w.run_scope_name, w.run_scope_version, w.run_ingested,
                w.run_resource,
            )  # fmt: skip
            buffers = w.buffers(hand_over=hand_over)
            tables.append(_table(wire_arrays(buffers, n), run_ends, run_values, resources))
        if len(self.reference) or not tables:
            tables.append(self.reference.to_arrow())
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)

    def _resource(self, raw: bytes) -> tuple[str, list[str], list[str]] | None:
        """A resource's block values, cached by its bytes (services send the same one each time)."""
        cache = self._resources
        if raw in cache:
            return cache[raw]
        try:
            entry: tuple[str, list[str], list[str]] | None = resource_entry(Resource.FromString(raw))
        except (DecodeError, ValueError):
            entry = None  # the Python builder reports it
        if len(cache) >= _RESOURCE_CACHE_LIMIT:
            cache.clear()
        cache[raw] = entry
        return entry

    def _general(
        self, value: bytes, ri: int, si: int, pi: int
    ) -> tuple[Genai, str, str, list[str], list[str]]:
        """One span through the reference's general path (events, links, flattened lists...)."""
        if self._real is None or self._real[0] is not value:
            real = TracesData()
            real.ParseFromString(value)
            self._real = (value, real)
        span = self._real[1].resource_spans[ri].scope_spans[si].spans[pi]
        keys: list[str] = []
        values: list[str] = []
        g, events_json, links_json = SpanBuilder._general(span, keys, values)
        return g, events_json, links_json, keys, values
