"""`spanline run writer` that stops once between an insert and its offset commit.

Run as ``python -m tests.support.writer_hold run writer ...`` with
``SPANLINE_TEST_HOLD_AFTER_INSERT_S`` set. The first batch holding spans is written to
ClickHouse as usual; then, before the batch goes back to the consumer loop (which commits
its offsets), one line starting with ``{"spanline_test_hold"`` is printed with the batch's
offset ranges and the process sleeps. A test that waits for that line and SIGKILLs the
process has proven its kill landed after the insert and before the commit. Nothing else
of the writer changes: the insert, the consumer and the commit are the real code.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence

from spanline.core.kafka import InMessage, Outcome
from spanline.writer.service import WriteStrategy

MARKER = '{"spanline_test_hold"'


def install(hold_s: float) -> None:
    original = WriteStrategy.process
    held = False

    async def process(self: WriteStrategy, batch: Sequence[InMessage]) -> Outcome:
        nonlocal held
        outcome = await original(self, batch)
        if not held and any(m.topic == self._redacted for m in batch):
            held = True
            ranges: dict[str, list[int]] = {}
            for m in batch:
                lo_hi = ranges.setdefault(f"{m.topic}/{m.partition}", [m.offset, m.offset])
                lo_hi[0], lo_hi[1] = min(lo_hi[0], m.offset), max(lo_hi[1], m.offset)
            line = {"spanline_test_hold": "inserted; holding before commit", "messages": len(batch)}
            print(json.dumps({**line, "offsets": ranges}), flush=True)
            await asyncio.sleep(hold_s)
        return outcome

    WriteStrategy.process = process  # type: ignore[method-assign]


def parse_marker(log_text: str) -> dict[str, object] | None:
    for line in log_text.splitlines():
        if line.startswith(MARKER):
            parsed: dict[str, object] = json.loads(line)
            return parsed
    return None


if __name__ == "__main__":
    install(float(os.environ.get("SPANLINE_TEST_HOLD_AFTER_INSERT_S", "60")))
    from spanline.cli.main import main

    sys.exit(main(sys.argv[1:]))
