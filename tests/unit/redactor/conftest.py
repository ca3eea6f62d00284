from __future__ import annotations

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList


def sv(value: str) -> AnyValue:
    return AnyValue(string_value=value)


def kv(key: str, value: AnyValue | str | int) -> KeyValue:
    if isinstance(value, str):
        value = sv(value)
    elif isinstance(value, int):
        value = AnyValue(int_value=value)
    return KeyValue(key=key, value=value)


def array(*values: AnyValue | str) -> AnyValue:
    return AnyValue(array_value=ArrayValue(values=[sv(v) if isinstance(v, str) else v for v in values]))


def kvlist(**values: AnyValue | str) -> AnyValue:
    return AnyValue(kvlist_value=KeyValueList(values=[kv(k, v) for k, v in values.items()]))
