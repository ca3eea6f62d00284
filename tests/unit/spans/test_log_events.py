"""Log records read as GenAI events: one reading for the logs rows and the scorer."""

from __future__ import annotations

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData

from spanline.spans.log_events import NotLogs, event_parts, event_time_ns, log_records


def test_records_of_every_resource_and_scope_in_order() -> None:
    data = LogsData()
    for resource in range(2):
        for scope in range(2):
            sl = data.resource_logs.add() if scope == 0 else data.resource_logs[-1]
            records = sl.scope_logs.add().log_records
            records.add(severity_text=f"{resource}.{scope}")
    assert [r.severity_text for r in log_records(data.SerializeToString())] == ["0.0", "0.1", "1.0", "1.1"]


def test_garbage_is_refused_before_any_record() -> None:
    with pytest.raises(NotLogs, match="not an OTLP LogsData"):
        log_records(b"\x0a\xff\xff\xff")


def test_event_name_content_and_time() -> None:
    data = LogsData()
    rec = data.resource_logs.add().scope_logs.add().log_records.add(observed_time_unix_nano=7)
    rec.attributes.extend(
        [
            KeyValue(key="event.name", value=AnyValue(string_value="gen_ai.choice")),
            KeyValue(key="gen_ai.output.messages", value=AnyValue(string_value="[]")),
        ]
    )
    name, body, attrs = event_parts(rec)
    assert (name, body, event_time_ns(rec)) == ("gen_ai.choice", '{"gen_ai.output.messages":"[]"}', 7)
    assert "gen_ai.output.messages" not in attrs  # content, not map data
