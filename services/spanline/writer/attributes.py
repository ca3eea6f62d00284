"""OTLP ``AnyValue`` to Python and to the string form stored in ``Map(..., String)`` columns.

Scalars keep their natural text (``42``, ``true``, ``0.5``); arrays and key-value lists
become compact JSON so a query can still ``JSONExtract`` them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


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
        return [any_value(v) for v in value.array_value.values]
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
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def to_int(value: Any) -> int | None:
    """Token counts arrive as int, float or numeric text depending on the instrumentation."""
    if type(value) is int:
        return value if value >= 0 else None  # type: ignore[no-any-return]
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value >= 0 and value == value else None
    if isinstance(value, str):
        try:
            parsed = int(float(value))
        except ValueError:
            return None
        return parsed if parsed >= 0 else None
    return None


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
