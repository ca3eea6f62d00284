"""Garbage on the writer's topics: dead-lettered with a reason, the rest of the batch written."""

from __future__ import annotations

import asyncio
import time

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

from spanline.core.kafka import OutRecord, Producer
from spanline.core.kafka.dlq import H_ERROR_REASON
from spanline.v1.spanline_pb2 import Score
from tests.support.kafka import read_topic
from tests.support.pipeline import Pipeline

pytestmark = pytest.mark.integration


def test_unparseable_messages_go_to_dlq_and_good_ones_land(pipeline: Pipeline) -> None:
    topics = pipeline.settings.topics
    good = TracesData()
    good.resource_spans.add().scope_spans.add().spans.append(
        Span(
            trace_id=b"\x42" * 16,
            span_id=b"\x43" * 8,
            name="ok",
            start_time_unix_nano=time.time_ns(),
            end_time_unix_nano=time.time_ns() + 1000,
        )
    )
    bad_ids = TracesData()
    bad_ids.resource_spans.add().scope_spans.add().spans.append(
        Span(trace_id=b"\x01", span_id=b"\x02", name="x")
    )
    score = Score(
        score_id="s-1", project_id="default", trace_id=b"\x42" * 16, name="relevance", score_value=0.9
    )
    headers = [("spanline-signal", b"traces"), ("spanline-project", b"default")]

    async def produce() -> None:
        p = Producer(pipeline.settings.kafka)
        await p.send_all(
            [
                OutRecord(topics.redacted, b"\xff\xfe not protobuf", b"k1", headers),
                OutRecord(topics.redacted, bad_ids.SerializeToString(), b"k2", headers),
                OutRecord(topics.redacted, good.SerializeToString(), b"\x42" * 16, headers),
                OutRecord(topics.redacted, b"\x0a\x00", b"k3", [("spanline-signal", b"metrics")]),
                OutRecord(topics.scores, b"\x99garbage", b"k4"),
                OutRecord(topics.scores, score.SerializeToString(), b"\x42" * 16),
                OutRecord(topics.alerts, b"\x12\xff\xff", b"k5"),
                OutRecord(topics.audit, b"\x08\x08\x08", b"k6"),
            ]
        )
        await p.stop()

    asyncio.run(produce())
    dlq = asyncio.run(read_topic(pipeline.settings.kafka.bootstrap, topics.redacted + ".dlq", min_messages=3))
    details = {m.key: m.header("spanline-error-detail") for m in dlq}
    pipeline.wait_for("SELECT count() FROM spans", 1)
    pipeline.wait_for("SELECT count() FROM scores", 1)
    assert pipeline.scalar("SELECT name FROM spans") == "ok"
    assert sorted(details) == [b"k1", b"k2", b"k3"], details
    assert {m.header(H_ERROR_REASON) for m in dlq} == {b"parse_error"}
    score_dlq = asyncio.run(
        read_topic(pipeline.settings.kafka.bootstrap, topics.scores + ".dlq", min_messages=1)
    )
    assert {m.key for m in score_dlq} == {b"k4"}  # at-least-once: a replayed batch may repeat it
    assert pipeline.writer.proc is not None and pipeline.writer.proc.poll() is None
    assert "dead-lettered" in pipeline.writer.logs()
    assert "not protobuf" not in pipeline.writer.logs()
