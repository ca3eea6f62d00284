from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spanline.core.broker import free_port
from tests.support.kafka import unique_prefix
from tests.support.pipeline import Pipeline


@pytest.fixture
def pipeline(make_settings: Any, tmp_path: Path) -> Iterator[Pipeline]:
    settings = make_settings(writer={"query_port": free_port()}, kafka={"group_prefix": unique_prefix("g")})
    with Pipeline(settings, tmp_path) as p:
        yield p
