"""A wire-compatible view of OTLP ``TracesData`` that is cheap to walk from Python.

Reading a field through the protobuf runtime creates a Python object per message and per
field, so a span's attributes (``KeyValue`` -> ``AnyValue`` -> value: three objects each)
cost more than everything else the writer does with them. This module declares a mirror of
``TracesData`` for the same wire bytes in which

* ``Span.attributes`` is ``repeated bytes``: one ``bytes`` object per attribute, which
  :func:`decode_key_value` turns into (key, map text, value) -- and which repeats byte for
  byte across spans for most attributes (``gen_ai.operation.name = "chat"``), so callers
  can cache the decoded form;
* ``Span.events`` and ``Span.links`` are bytes members of one ``oneof``: a single
  ``WhichOneof`` call says whether a span has any (those spans take the general path,
  which parses the message with the real schema);
* resource, scope and status keep their real OTLP message types (same merge semantics).

Every field of the real messages is declared with the same number and wire type, so
anything the real schema accepts parses here too; nested content the mirror does not
parse (attributes, events, links) is parsed later by the real schema or by the strict
decoder below, so a message the real schema rejects is still rejected.
"""

from __future__ import annotations

from struct import unpack_from
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor_pb2 import FieldDescriptorProto
from google.protobuf.message import Message
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from spanline.spans.attributes import any_value, to_text

_PACKAGE = "spanline.spans.mirror"
_T = FieldDescriptorProto


def _mirror_file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(
        name="spanline/spans/otlp_mirror.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=[trace_pb2.DESCRIPTOR.name],
    )
    own = f".{_PACKAGE}."

    def message(name: str, fields: list[tuple[str, int, int, str, bool]], oneof: str = "") -> None:
        m = f.message_type.add(name=name)
        if oneof:
            m.oneof_decl.add(name=oneof)
        for field_name, number, kind, type_name, repeated in fields:
            fd = m.field.add(
                name=field_name,
                number=number,
                type=kind,  # type: ignore[arg-type]
                label=_T.LABEL_REPEATED if repeated else _T.LABEL_OPTIONAL,
            )
            if type_name:
                fd.type_name = type_name
            if oneof and field_name in ("events", "links"):
                fd.oneof_index = 0

    message("TracesData", [("resource_spans", 1, _T.TYPE_MESSAGE, own + "ResourceSpans", True)])
    message(
        "ResourceSpans",
        [
            ("resource", 1, _T.TYPE_MESSAGE, ".opentelemetry.proto.resource.v1.Resource", False),
            ("scope_spans", 2, _T.TYPE_MESSAGE, own + "ScopeSpans", True),
            ("schema_url", 3, _T.TYPE_STRING, "", False),
        ],
    )
    message(
        "ScopeSpans",
        [
            ("scope", 1, _T.TYPE_MESSAGE, ".opentelemetry.proto.common.v1.InstrumentationScope", False),
            ("spans", 2, _T.TYPE_MESSAGE, own + "Span", True),
            ("schema_url", 3, _T.TYPE_STRING, "", False),
        ],
    )
    message(
        "Span",
        [
            ("trace_id", 1, _T.TYPE_BYTES, "", False),
            ("span_id", 2, _T.TYPE_BYTES, "", False),
            ("trace_state", 3, _T.TYPE_STRING, "", False),
            ("parent_span_id", 4, _T.TYPE_BYTES, "", False),
            ("flags", 16, _T.TYPE_FIXED32, "", False),
            ("name", 5, _T.TYPE_STRING, "", False),
            ("kind", 6, _T.TYPE_INT32, "", False),  # an open enum on the wire
            ("start_time_unix_nano", 7, _T.TYPE_FIXED64, "", False),
            ("end_time_unix_nano", 8, _T.TYPE_FIXED64, "", False),
            ("attributes", 9, _T.TYPE_BYTES, "", True),
            ("dropped_attributes_count", 10, _T.TYPE_UINT32, "", False),
            ("events", 11, _T.TYPE_BYTES, "", False),
            ("dropped_events_count", 12, _T.TYPE_UINT32, "", False),
            ("links", 13, _T.TYPE_BYTES, "", False),
            ("dropped_links_count", 14, _T.TYPE_UINT32, "", False),
            ("status", 15, _T.TYPE_MESSAGE, ".opentelemetry.proto.trace.v1.Status", False),
        ],
        oneof="extras",
    )
    return f


def _build_classes() -> dict[str, type[Message]]:
    pool = descriptor_pool.DescriptorPool()
    for module in (common_pb2, resource_pb2, trace_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    pool.Add(_mirror_file())
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in ("TracesData", "Span")
    }


_CLASSES = _build_classes()
MirrorTracesData: Any = _CLASSES["TracesData"]
MirrorSpan: Any = _CLASSES["Span"]


def _varint(raw: bytes, pos: int) -> tuple[int, int]:
    """(value, next position); ValueError for anything but a well-formed varint of <= 10 bytes."""
    result = 0
    shift = 0
    while True:
        byte = raw[pos]  # IndexError at the end: not canonical, the caller falls back
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint too long")


def _runtime_key_value(raw: bytes) -> tuple[str, str, Any]:
    """The protobuf runtime's reading of one KeyValue (raises DecodeError for garbage)."""
    kv = KeyValue.FromString(raw)
    if kv.HasField("value"):
        value = any_value(kv.value)
        return kv.key, to_text(value), value
    return kv.key, "", None


def decode_key_value(raw: bytes) -> tuple[str, str, Any]:
    """(key, map-column text, Python value) of one serialized ``KeyValue``.

    The canonical encoding every SDK writes (key, then a value holding one string, int,
    double or bool) is read here; everything else -- arrays, maps, bytes, unknown or
    repeated fields, odd varints -- goes through the protobuf runtime, so the result is
    always what ``attributes_dict`` would give. Text is strict UTF-8 as in the runtime.
    ``value`` is None for an unset AnyValue.
    """
    try:
        end = len(raw)
        if raw[0] != 0x0A:
            return _runtime_key_value(raw)
        size, pos = _varint(raw, 1)
        stop = pos + size
        key = raw[pos:stop].decode("utf-8")
        if stop == end:
            return key, "", None  # no value: an unset AnyValue
        if raw[stop] != 0x12:
            return _runtime_key_value(raw)
        size, pos = _varint(raw, stop + 1)
        if pos + size != end:
            return _runtime_key_value(raw)
        if size == 0:
            return key, "", None
        tag = raw[pos]
        if tag == 0x0A:  # string_value
            size, start = _varint(raw, pos + 1)
            if start + size == end:
                text = raw[start:end].decode("utf-8")
                return key, text, text
        elif tag == 0x18:  # int_value (int64)
            number, stop = _varint(raw, pos + 1)
            if stop == end and number < 1 << 64:
                if number >= 1 << 63:
                    number -= 1 << 64
                return key, str(number), number
        elif tag == 0x21:  # double_value
            if pos + 9 == end:
                double: float = unpack_from("<d", raw, pos + 1)[0]
                return key, repr(double), double
        elif tag == 0x10:  # bool_value
            number, stop = _varint(raw, pos + 1)
            if stop == end and number < 1 << 64:
                return key, "true" if number else "false", number != 0
        return _runtime_key_value(raw)
    except (IndexError, ValueError):
        # not canonical (or not UTF-8): the runtime decides, and raises for real garbage
        return _runtime_key_value(raw)
