"""Two coldtier instances storing the same messages (a consumer the group has already
replaced, still finishing its batch) never store a row twice.

Each instance holds its own copy of the table metadata; the stale one learns of the other's
commit only when its own commit conflicts. The batch is checked again on the metadata the
commit is retried on, so the messages the other instance stored are left out.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from spanline.coldtier.governance import GovernanceStore
from spanline.coldtier.offsets import table_offsets
from spanline.coldtier.service import ColdStrategy
from spanline.coldtier.tables import ensure_tables
from spanline.settings import Settings
from tests.integration.coldtier.conftest import cold_span_keys, produce, span_record
from tests.support.kafka import read_topic_sync


@pytest.mark.parametrize("stored_by_other", ["all", "head"])
def test_a_replaced_instance_does_not_store_what_the_new_owner_stored(
    cold_settings: Settings, stored_by_other: str, caplog: pytest.LogCaptureFixture
) -> None:
    s = cold_settings
    produce(s, [span_record(s, os.urandom(16), 2) for _ in range(12)])
    messages = read_topic_sync(s.kafka.bootstrap, s.topics.redacted, min_messages=12)
    governance = GovernanceStore.from_settings(s)
    # Both instances load the (empty) tables before either commits.
    zombie = ColdStrategy(s, ensure_tables(s)[1], governance)
    owner = ColdStrategy(s, ensure_tables(s)[1], governance)
    taken = messages if stored_by_other == "all" else [m for m in messages if m.offset < 2]
    asyncio.run(owner.process(taken))
    caplog.set_level("INFO", logger="spanline.coldtier.service")

    asyncio.run(zombie.process(messages))

    keys = cold_span_keys(s)
    assert len(keys) == 2 * len(messages), f"{len(keys) - 2 * len(messages)} spans stored twice"
    assert len(set(keys)) == len(keys)
    _, tables = ensure_tables(s)
    expected = {m.partition: 0 for m in messages}
    for m in messages:
        expected[m.partition] = max(expected[m.partition], m.offset + 1)
    assert table_offsets(tables["spans"])[s.topics.redacted] == expected
    assert any(r.getMessage() == "skipping messages another instance stored" for r in caplog.records)
