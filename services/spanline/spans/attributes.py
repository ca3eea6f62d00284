"""OTLP ``AnyValue`` to Python and to the string form stored in ``Map(..., String)`` columns.

Scalars keep their natural text (``42``, ``true``, ``0.5``); arrays and key-value lists
become compact JSON so a query can still ``JSONExtract`` them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from json.encoder import encode_basestring
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def _not_serializable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _make_json_text() -> Callable[[Any], str]:
    """``json.dumps(v, ensure_ascii=False, separators=(",", ":"))`` with its encoder built once.

    ``json.dumps`` with any non-default option builds a new encoder per call (~3 us for a
    one-element list, several times per span). Same C encoder, same output; no circular
    reference check, which values decoded from protobuf never need.
    """
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - CPython always has the C accelerator
        encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
        return encoder.encode
    # (markers, default, encoder, indent, key_sep, item_sep, sort_keys, skipkeys, allow_nan)
    iterencode = c_make_encoder(
        None, _not_serializable, encode_basestring, None, ":", ",", False, False, True
    )
    join = "".join

    def json_text(value: Any) -> str:
        if type(value) is str:
            return encode_basestring(value)  # type: ignore[no-any-return]
        return join(iterencode(value, 0))

    return json_text


json_text: Callable[[Any], str] = _make_json_text()
"""Compact JSON text of a value, non-ASCII kept as is (the form every map/JSON column holds)."""


def any_value(value: AnyValue) -> Any:
    """The Python value of an OTLP AnyValue (bytes become base64 text: maps hold strings)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "bool_value":
        return value.bool_value
    if which == "array_value":
        # arrays are mostly strings (finish reasons, tags): one accessor call per such item
        return [v.string_value or any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def attributes_dict(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    """Attributes as a dict; a repeated key keeps its last value, as the OTel SDKs do."""
    out: dict[str, Any] = {}
    for kv in kvs:
        value = kv.value
        which = value.WhichOneof("value")
        # the scalar cases inline: this loop runs for every attribute of every span
        if which == "string_value":
            out[kv.key] = value.string_value
        elif which == "int_value":
            out[kv.key] = value.int_value
        elif which == "double_value":
            out[kv.key] = value.double_value
        elif which == "bool_value":
            out[kv.key] = value.bool_value
        else:
            out[kv.key] = any_value(value)
    return out


def to_text(value: Any) -> str:
    """Map-column text of a Python attribute value."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return repr(value)
    if value is None:
        return ""
    return json_text(value)


_INF = float("inf")


UINT64_MAX = (1 << 64) - 1


def to_int(value: Any) -> int | None:
    """Token counts arrive as int, float or numeric text depending on the instrumentation.

    None for anything that is not a count a ``UInt64`` column holds: negative, NaN,
    infinite, or 2^64 and above (one such value would otherwise fail the whole batch's
    conversion, not just its own message).
    """
    if type(value) is int:
        return value if 0 <= value <= UINT64_MAX else None  # type: ignore[no-any-return]
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value) if 0 <= value <= UINT64_MAX else None
    if isinstance(value, float):
        return int(value) if 0 <= value < _TWO_64 else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return int(number) if 0 <= number < _TWO_64 else None
    return None


_TWO_64 = float(1 << 64)


def to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
