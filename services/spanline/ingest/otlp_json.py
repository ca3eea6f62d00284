"""OTLP/JSON <-> protobuf, as the OTLP specification maps it.

The OTLP JSON encoding is protobuf's canonical JSON mapping with a few departures:
trace and span ids are hex strings (not base64), keys are lowerCamelCase (the proto
names are accepted too), enums may be names or integers, 64-bit integers may be strings
or numbers, unknown fields must be ignored.

Decoding walks the parsed JSON once against the message descriptors (a per-message plan
of field kinds, built once) into the keyword arguments of the request's constructor,
which builds the whole message in C. protobuf's `json_format.ParseDict` does the same
generically and took 2.5x the CPU on a 100-span request (ingest's JSON bottleneck, see
benchmarks/ingest_http_bench.py); tests check both give the same message.

An id that is not hex becomes one zero byte: it then fails the same id check as a
protobuf request with a wrong-length id, so the span (not the request) is rejected and
reported in partial_success, exactly as over gRPC.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

_HEX_IDS = frozenset(
    {
        "opentelemetry.proto.trace.v1.Span.trace_id",
        "opentelemetry.proto.trace.v1.Span.span_id",
        "opentelemetry.proto.trace.v1.Span.parent_span_id",
        "opentelemetry.proto.trace.v1.Span.Link.trace_id",
        "opentelemetry.proto.trace.v1.Span.Link.span_id",
        "opentelemetry.proto.logs.v1.LogRecord.trace_id",
        "opentelemetry.proto.logs.v1.LogRecord.span_id",
    }
)
_HEX = re.compile(r"[0-9a-fA-F]*")
_BAD_ID = b"\x00"

# Field kinds of a plan entry.
_MESSAGE, _STRING, _INT, _BYTES, _HEX_ID, _ENUM, _BOOL, _FLOAT = range(8)
_F = FieldDescriptor
_KINDS = {
    _F.TYPE_MESSAGE: _MESSAGE,
    _F.TYPE_STRING: _STRING,
    _F.TYPE_BYTES: _BYTES,
    _F.TYPE_ENUM: _ENUM,
    _F.TYPE_BOOL: _BOOL,
    _F.TYPE_DOUBLE: _FLOAT,
    _F.TYPE_FLOAT: _FLOAT,
    **dict.fromkeys(
        (
            _F.TYPE_INT32,
            _F.TYPE_INT64,
            _F.TYPE_UINT32,
            _F.TYPE_UINT64,
            _F.TYPE_SINT32,
            _F.TYPE_SINT64,
            _F.TYPE_FIXED32,
            _F.TYPE_FIXED64,
            _F.TYPE_SFIXED32,
            _F.TYPE_SFIXED64,
        ),
        _INT,
    ),
}

# json key -> (field name, kind, repeated, message descriptor or enum names->numbers)
_Plan = dict[str, tuple[str, int, bool, Any]]
_plans: dict[str, _Plan] = {}


def _plan(desc: Descriptor) -> _Plan:
    plan = _plans.get(desc.full_name)
    if plan is None:
        plan = {}
        for f in desc.fields:
            kind = _KINDS[f.type]
            extra: Any = None
            if kind == _MESSAGE:
                extra = f.message_type
            elif kind == _ENUM:
                extra = {v.name: v.number for v in (f.enum_type.values if f.enum_type else ())}
            elif kind == _BYTES and f.full_name in _HEX_IDS:
                kind = _HEX_ID
            entry = (f.name, kind, f.is_repeated, extra)
            plan[f.name] = plan[f.json_name] = entry
        _plans[desc.full_name] = plan
    return plan


def _message(obj: Any, desc: Descriptor) -> dict[str, Any]:
    if type(obj) is not dict:
        raise DecodeError(f"{desc.name} must be a JSON object")
    plan = _plan(desc)
    out: dict[str, Any] = {}
    for key, value in obj.items():
        entry = plan.get(key)
        if entry is None or value is None:  # unknown fields are ignored (OTLP/JSON rule)
            continue
        name, kind, repeated, extra = entry
        if repeated:
            if type(value) is not list:
                raise DecodeError(f"{name} must be a JSON array")
            out[name] = [_value(name, kind, extra, v) for v in value]
        else:
            out[name] = _value(name, kind, extra, value)
    return out


def _value(name: str, kind: int, extra: Any, v: Any) -> Any:
    t = type(v)
    if kind == _MESSAGE:
        return _message(v, extra)
    if kind == _STRING:
        if t is str:
            return v
    elif kind == _INT:
        if t is int:
            return v
        if t is str:
            try:
                return int(v)
            except ValueError:
                pass
        elif t is float and v.is_integer():
            return int(v)
    elif kind == _HEX_ID:
        if t is str:
            if len(v) % 2 or not _HEX.fullmatch(v):
                return _BAD_ID
            return bytes.fromhex(v)
    elif kind == _BYTES:
        if t is str:
            try:
                padded = v + "=" * (-len(v) % 4)
                if "-" in v or "_" in v:
                    return base64.urlsafe_b64decode(padded)
                return base64.b64decode(padded, validate=True)
            except (binascii.Error, ValueError):
                pass
    elif kind == _ENUM:
        if t is int:
            return v
        if t is str:
            return extra.get(v, 0)  # an unknown name is ignored like an unknown field: the default
    elif kind == _BOOL:
        if t is bool:
            return v
    elif kind == _FLOAT:
        if t is int or t is float:
            return float(v)
        if v in ("NaN", "Infinity", "-Infinity"):
            return float(v.replace("Infinity", "inf"))
    raise DecodeError(f"{name}: unexpected JSON value")


def decode(body: bytes, request_type: type[Message]) -> Message:
    """An Export*ServiceRequest from OTLP/JSON; DecodeError when the body is not one."""
    try:
        tree = json.loads(body) if body.strip() else {}
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise DecodeError("not JSON") from exc
    except RecursionError:
        raise DecodeError("JSON nested too deeply") from None
    try:
        fields = _message(tree, cast(Descriptor, request_type.DESCRIPTOR))
    except RecursionError:  # protobuf's own parsers stop at depth 100 too
        raise DecodeError("values nested too deeply") from None
    try:
        return request_type(**fields)
    except (TypeError, ValueError) as exc:  # e.g. an integer out of its field's range
        raise DecodeError(f"not an OTLP/JSON request: {type(exc).__name__}") from None


def encode(message: Message) -> bytes:
    """OTLP/JSON of a response message (camelCase keys, int64 as strings)."""
    return json_format.MessageToJson(message, indent=None).encode("utf-8")
