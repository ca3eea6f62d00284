"""OTLP attribute values from plain Python values.

The load generator, the benchmarks and the tests all build spans from dicts; one
conversion keeps them agreeing on how a bool, a list or anything else is encoded.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList


def _scalar(value: object) -> AnyValue | None:
    """bool/int/float/str as their AnyValue kind (bool before int: it is one), else None."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    return None


def any_value(value: object) -> AnyValue:
    """An attribute value: scalars keep their kind; a list or tuple becomes an array of
    strings (what instrumentations send for finish reasons, tags); anything else its str()."""
    scalar = _scalar(value)
    if scalar is not None:
        return scalar
    if isinstance(value, Sequence | list | tuple) and not isinstance(value, bytes | bytearray):
        return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=str(v)) for v in value]))
    return AnyValue(string_value=str(value))


def json_value(value: object) -> AnyValue:
    """A JSON-shaped value, nested as it is (what SDKs do with structured log/event bodies):
    dicts become key-value lists and lists arrays, recursively; anything else its str()."""
    scalar = _scalar(value)
    if scalar is not None:
        return scalar
    if isinstance(value, dict):
        return AnyValue(
            kvlist_value=KeyValueList(
                values=[KeyValue(key=str(k), value=json_value(v)) for k, v in value.items()]
            )
        )
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[json_value(v) for v in value]))
    return AnyValue(string_value=str(value))


def key_value(key: str, value: object) -> KeyValue:
    return KeyValue(key=key, value=any_value(value))
