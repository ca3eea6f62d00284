"""Claim check on S3 through boto3, against a moto server on 127.0.0.1, plus chdb."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from spanline.core.broker import free_port
from spanline.query.client import DirectBackend
from spanline.query.trace_view import fetch_trace, trace_json
from spanline.settings import load_settings
from spanline.spans.object_store import (
    ObjectStoreError,
    PayloadOffloader,
    S3ObjectStore,
    open_object_store,
    parse_ref,
)
from spanline.spans.pricing import PricingTable
from spanline.spans.rows import SpanRows
from spanline.writer.config import resolve_object_store_url
from spanline.writer.store import ClickHouseStore, connect
from tests.integration.writer.otlp import T0, traces

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)


def test_s3_claim_check_round_trip(s3_endpoint: str, store: ClickHouseStore, chdb_dsn: str) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="spanline-payloads")
    settings = load_settings(
        None,
        writer={"object_store_url": "s3://spanline-payloads/hot/v1", "s3_endpoint_url": s3_endpoint},
    )
    url = resolve_object_store_url(settings)
    objects = open_object_store(url, s3_endpoint_url=s3_endpoint, s3_region="us-east-1")
    assert isinstance(objects, S3ObjectStore)
    offloader = PayloadOffloader(objects, settings.writer.payload_offload_bytes)

    payload = json.dumps([{"role": "tool", "content": os.urandom(700_000).hex()}])
    trace_id = os.urandom(16)
    spans = [
        {
            "span_id": 1,
            "name": "chat",
            "attrs": {"gen_ai.operation.name": "chat", "gen_ai.output.messages": payload},
        }
    ]
    buf = SpanRows(PricingTable.load(), offloader)
    buf.add(traces(trace_id, spans), "p", T0)
    buf.add(traces(trace_id, spans), "p", T0)  # same content again: same key, no second object
    table = buf.take()
    ref = parse_ref(table.column("output_messages").to_pylist()[0])
    assert ref is not None and ref.length == len(payload.encode())
    listed = s3.list_objects_v2(Bucket="spanline-payloads", Prefix="hot/v1/sha256/")
    assert [o["Key"] for o in listed["Contents"]] == [f"hot/v1/sha256/{ref.sha256}"]
    store.insert("spans", table)

    backend = DirectBackend(
        connect(chdb_dsn, readonly=True, database=store.database), store.database, max_rows=100, timeout_s=10
    )
    try:
        doc = trace_json(fetch_trace(backend, trace_id.hex()), objects)
    finally:
        backend.close()
    assert len(doc["spans"]) == 1
    assert doc["spans"][0]["output_messages"] == payload


def test_s3_missing_bucket_is_a_clear_error(s3_endpoint: str) -> None:
    objects = S3ObjectStore("s3://no-such-bucket/x", endpoint_url=s3_endpoint, region="us-east-1")
    with pytest.raises(ObjectStoreError, match="no-such-bucket"):
        objects.put("ab" * 32, b"data")
