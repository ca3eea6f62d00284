"""Cold-tier fixtures: small OTLP traces on the real broker, Iceberg on a temp dir or moto S3."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from spanline.coldtier.erasure import ErasureRequest, new_request_id
from spanline.coldtier.governance import GovernanceStore, utc_now_iso
from spanline.coldtier.tables import ensure_tables
from spanline.core.broker import free_port
from spanline.core.kafka.admin import create_topics
from spanline.settings import Settings
from tests.integration.writer.otlp import traces


def trace_value(
    trace_id: bytes, n_spans: int, *, user: str = "u-1", conversation: str = "c-1", t0: int | None = None
) -> bytes:
    spans = [
        {
            "span_id": i + 1,
            "parent": None if i == 0 else 1,
            "name": "chat",
            "attrs": {
                "user.id": user,
                "gen_ai.conversation.id": conversation,
                "gen_ai.usage.input_tokens": 10,
            },
        }
        for i in range(n_spans)
    ]
    kwargs: dict[str, Any] = {} if t0 is None else {"t0": t0}
    return traces(trace_id, spans, **kwargs).SerializeToString()


Record = tuple[str, bytes, bytes, list[tuple[str, bytes]]]


def produce(settings: Settings, records: list[Record]) -> None:
    async def go() -> None:
        await create_topics(settings.kafka, settings.topics, settings.retention)
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka.bootstrap, max_request_size=4 * 1024 * 1024
        )
        await producer.start()
        try:
            for topic, key, value, headers in records:
                await producer.send_and_wait(topic, value, key=key, headers=headers)
        finally:
            await producer.stop()

    asyncio.run(go())


def span_record(settings: Settings, trace_id: bytes, n_spans: int, project: str = "p1", **kw: Any) -> Record:
    return (
        settings.topics.redacted,
        trace_id,
        trace_value(trace_id, n_spans, **kw),
        [("spanline-project", project.encode()), ("spanline-signal", b"traces")],
    )


def cold_span_keys(settings: Settings) -> list[tuple[str, str]]:
    _, tables = ensure_tables(settings)
    data = tables["spans"].scan(selected_fields=("trace_id", "span_id")).to_arrow()
    return list(zip(data.column("trace_id").to_pylist(), data.column("span_id").to_pylist(), strict=True))


def wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def cold_settings(make_settings: Any) -> Settings:
    settings: Settings = make_settings(
        coldtier={
            "batch_max_messages": 4,
            "batch_max_wait_s": 0.2,
            "maintenance_interval_s": 0,
            "erasure_poll_s": 0.5,
        }
    )
    return settings


class MotoServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        exe = Path(sys.executable).parent / "moto_server"
        self.proc = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("moto_server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    import boto3

    server = MotoServer()
    server.start()
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    s3 = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="cold")
    yield server
    server.stop()


def s3_coldtier(moto: MotoServer, prefix: str) -> dict[str, Any]:
    return {
        "warehouse": f"s3://cold/{prefix}/wh",
        "governance_url": f"s3://cold/{prefix}/gov",
        "s3_endpoint": moto.endpoint,
        "s3_region": "us-east-1",
        "s3_access_key_id": "testing",
        "s3_secret_access_key": "testing",
        "s3_path_style": True,
    }


def erasure_request(gov: GovernanceStore, user_id: str, projects: list[str] | None = None) -> ErasureRequest:
    """A user-id erasure request as `spanline erase` files it (all projects when None)."""
    return ErasureRequest(
        request_id=new_request_id(),
        kind="user_id",
        forms=[user_id],
        subject_hmac=gov.digest("user_id", user_id),
        requester="dpo@example.org",
        projects=projects,
        created_at=utc_now_iso(),
    )
