"""The embedded engine's memory bounds: which library pages may be dropped, and operator overrides."""

from __future__ import annotations

import pytest

from spanline.writer import engine_memory
from spanline.writer.engine_memory import _readonly_library_ranges, configure_engine_allocator

_SMAPS = """\
7f0000000000-7f0000100000 r--p 00000000 08:01 42    /venv/chdb/_chdb.abi3.so
Rss:                 400 kB
Anonymous:             0 kB
VmFlags: rd mr mw me sd
7f0000100000-7f0000300000 r-xp 00100000 08:01 42    /venv/chdb/_chdb.abi3.so
Rss:                1200 kB
Anonymous:             0 kB
7f0000300000-7f0000310000 r--p 00300000 08:01 42    /venv/chdb/_chdb.abi3.so
Rss:                  64 kB
Anonymous:            64 kB
7f0000310000-7f0000320000 rw-p 00310000 08:01 42    /venv/chdb/_chdb.abi3.so
Anonymous:             0 kB
7f0000400000-7f0000500000 r-xp 00000000 08:01 43    /venv/pyarrow/libarrow.so.2600
Anonymous:             0 kB
7f0000500000-7f0000600000 rw-p 00000000 00:00 0
Anonymous:          1024 kB
"""


def test_only_read_only_library_mappings_without_private_pages_are_released() -> None:
    # the relocated (copy-on-write) read-only part and the writable data keep their pages:
    # dropping those would lose what the loader wrote there
    assert _readonly_library_ranges(_SMAPS, "_chdb.abi3.so") == [
        (0x7F0000000000, 0x7F0000100000),
        (0x7F0000100000, 0x7F0000300000),
    ]


def test_engine_allocator_options_leave_the_operators_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JE_MALLOC_CONF", "dirty_decay_ms:5000")
    configure_engine_allocator()
    assert engine_memory.os.environ["JE_MALLOC_CONF"] == "dirty_decay_ms:5000"
    monkeypatch.delenv("JE_MALLOC_CONF")
    configure_engine_allocator()
    assert engine_memory.os.environ["JE_MALLOC_CONF"] == engine_memory.ENGINE_MALLOC_CONF
