"""OTLP attribute values from plain Python values.

The load generator, the benchmarks and the tests all build spans from dicts; one
conversion keeps them agreeing on how a bool, a list or anything else is encoded.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue


def any_value(value: object) -> AnyValue:
    """bool/int/float/str map to their AnyValue kind (bool before int: it is one); a list or
    tuple becomes an array of strings; anything else is stored as its str()."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, Sequence | list | tuple) and not isinstance(value, bytes | bytearray):
        return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=str(v)) for v in value]))
    return AnyValue(string_value=str(value))


def key_value(key: str, value: object) -> KeyValue:
    return KeyValue(key=key, value=any_value(value))
