"""How a log record reads as a GenAI event: its name, its content, its other attributes.

Instrumentations that capture content as events put it in log records, named either by
the record's ``event_name`` field or by an ``event.name`` attribute (older releases), with
the content in the body or, with an empty body, in content attributes
(``gen_ai.input.messages``...). The writer's and the coldtier's ``logs`` rows and the
scorer's view of a trace's events read records through these functions, so they agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, LogsData

from spanline.spans.attributes import any_value, attributes_dict, json_text, to_text
from spanline.spans.genai_fields import payload_text

LOG_PAYLOAD_ATTRIBUTES = (
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.prompt",
    "gen_ai.completion",
)
"""Attributes that are an event's content when its body is empty."""


class NotLogs(ValueError):
    """A record value that is not an OTLP ``LogsData`` protobuf."""


def log_records(value: bytes) -> Iterator[LogRecord]:
    """Every log record of a logs record value, resource by resource.

    Raises :class:`NotLogs` (before yielding anything) when the bytes are not ``LogsData``.
    """
    try:
        logs = LogsData.FromString(value)
    except (DecodeError, ValueError):
        raise NotLogs("value is not an OTLP LogsData protobuf") from None
    return (rec for rl in logs.resource_logs for sl in rl.scope_logs for rec in sl.log_records)


def event_name(record: LogRecord, attributes: dict[str, Any]) -> str:
    """The record's ``event_name`` field, else its ``event.name`` attribute."""
    return record.event_name or to_text(attributes.get("event.name", ""))


def event_time_ns(record: LogRecord) -> int:
    """When the event happened: its time, else when it was observed (0 if neither)."""
    return record.time_unix_nano or record.observed_time_unix_nano  # type: ignore[no-any-return]


def event_parts(record: LogRecord) -> tuple[str, str, dict[str, Any]]:
    """(event name, content as text, the other attributes) of one record.

    The content is the body as text; with an empty body, the content attributes as a JSON
    object, removed from the attributes (they are payload, not map data).
    """
    attributes = attributes_dict(record.attributes)
    name = event_name(record, attributes)
    value = any_value(record.body) if record.HasField("body") else None
    body = "" if value is None else payload_text(value)
    if not body:
        content = {k: attributes.pop(k) for k in LOG_PAYLOAD_ATTRIBUTES if k in attributes}
        if content:
            body = json_text(content)
    return name, body, attributes
