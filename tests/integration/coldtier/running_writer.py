"""The hot store's owner as `spanline up` runs it, without Kafka: the writer's own job loop
(WriterService._erasure_jobs: erasures, legal holds, archive reads) and its query endpoint,
over a store the test opened, so the CLI sees a running pipeline and must hand work over."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from spanline.query.endpoint import start_query_endpoint
from spanline.settings import Settings
from spanline.writer.service import WriterService
from spanline.writer.store import ClickHouseStore


@contextmanager
def running_writer(settings: Settings, store: ClickHouseStore) -> Iterator[WriterService]:
    """Closes the store on exit; ``settings.writer.query_port`` must be a free port."""
    service = WriterService(settings)
    service.store = store
    endpoint = start_query_endpoint(settings)
    service._endpoint = endpoint
    loop = threading.Thread(target=asyncio.run, args=(service._erasure_jobs(),), daemon=True)
    loop.start()
    try:
        yield service
    finally:
        service.store = None  # the loop ends at its next poll
        loop.join(timeout=10)
        endpoint.stop()
        store.close()
    assert not loop.is_alive()
