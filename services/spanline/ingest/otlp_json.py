"""OTLP/JSON <-> protobuf, as the OTLP specification maps it.

The OTLP JSON encoding is protobuf's canonical JSON mapping with a few departures:
trace and span ids are hex strings (not base64), keys are lowerCamelCase, enums may be
names or integers, 64-bit integers may be strings or numbers, unknown fields must be
ignored. protobuf's `json_format` does all of it except the ids, so the ids are turned
into base64 on the parsed tree first; everything else is protobuf's own parser.

An id that is not hex becomes one zero byte: it then fails the same id check as a
protobuf request with a wrong-length id, so the span (not the request) is rejected and
reported in partial_success, exactly as over gRPC.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

_HEX = re.compile(r"[0-9a-fA-F]*")
_BAD_ID = base64.b64encode(b"\x00").decode("ascii")

# Where ids sit: container key -> child list key -> item list key -> id keys.
_SPAN_IDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
_LINK_IDS = ("traceId", "spanId", "trace_id", "span_id")
_LOG_IDS = ("traceId", "spanId", "trace_id", "span_id")


def _hex_to_b64(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # let protobuf's parser report the wrong type
    if len(value) % 2 or not _HEX.fullmatch(value):
        return _BAD_ID
    return base64.b64encode(bytes.fromhex(value)).decode("ascii")


def _items(parent: Any, *keys: str) -> list[Any]:
    """The list under the first present key of `keys`, or [] (bad shapes are left to protobuf)."""
    if not isinstance(parent, dict):
        return []
    for key in keys:
        value = parent.get(key)
        if isinstance(value, list):
            return value
    return []


def _fix_ids(item: Any, id_keys: tuple[str, ...]) -> None:
    if isinstance(item, dict):
        for key in id_keys:
            if key in item:
                item[key] = _hex_to_b64(item[key])


def _fix_trace_ids(tree: Any) -> None:
    for rs in _items(tree, "resourceSpans", "resource_spans"):
        for ss in _items(rs, "scopeSpans", "scope_spans"):
            for span in _items(ss, "spans"):
                _fix_ids(span, _SPAN_IDS)
                for link in _items(span, "links"):
                    _fix_ids(link, _LINK_IDS)


def _fix_log_ids(tree: Any) -> None:
    for rl in _items(tree, "resourceLogs", "resource_logs"):
        for sl in _items(rl, "scopeLogs", "scope_logs"):
            for record in _items(sl, "logRecords", "log_records"):
                _fix_ids(record, _LOG_IDS)


def decode(body: bytes, request_type: type[Message]) -> Message:
    """An Export*ServiceRequest from OTLP/JSON; DecodeError when the body is not one."""
    try:
        tree = json.loads(body) if body.strip() else {}
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise DecodeError("not JSON") from exc
    if not isinstance(tree, dict):
        raise DecodeError("OTLP/JSON request must be an object")
    _fix_trace_ids(tree)
    _fix_log_ids(tree)
    message = request_type()
    try:
        json_format.ParseDict(tree, message, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise DecodeError("not an OTLP/JSON request") from exc
    return message


def encode(message: Message) -> bytes:
    """OTLP/JSON of a response message (camelCase keys, int64 as strings)."""
    return json_format.MessageToJson(message, indent=None).encode("utf-8")
