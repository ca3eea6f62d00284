"""Fixtures shared by every test: the real bundled broker and per-test isolation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spanline.core.broker import BundledBroker, free_port
from spanline.settings import Settings, load_settings
from tests.support.kafka import unique_prefix


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BundledBroker]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    b = BundledBroker(log_path=log)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def make_settings(broker: BundledBroker, tmp_path: Path) -> Any:
    """Settings on the shared broker with a unique topic prefix (the broker keeps everything)."""
    prefix = unique_prefix()

    def factory(**sections: Any) -> Settings:
        base: dict[str, Any] = {
            "kafka": {
                "bootstrap": broker.bootstrap,
                "session_timeout_ms": 3000,
                "heartbeat_interval_ms": 500,
            },
            "topics": {"prefix": prefix, "partitions": 3},
            "data_dir": str(tmp_path / "data"),
            "ingest": {"port": free_port(), "http_port": free_port(), "otlp_http_port": free_port()},
        }
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        return load_settings(None, **base)

    return factory


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as SPANLINE_* variables, for child processes."""
    env = {
        "SPANLINE_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "SPANLINE_KAFKA_SESSION_TIMEOUT_MS": str(settings.kafka.session_timeout_ms),
        "SPANLINE_TOPICS_PREFIX": settings.topics.prefix,
        "SPANLINE_TOPICS_PARTITIONS": str(settings.topics.partitions),
        "SPANLINE_DATA_DIR": str(settings.data_dir),
        "SPANLINE_INGEST_PORT": str(settings.ingest.port),
        "SPANLINE_INGEST_OTLP_HTTP_PORT": str(settings.ingest.otlp_http_port),
    }
    return env
