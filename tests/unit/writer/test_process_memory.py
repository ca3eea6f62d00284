"""The process-level memory bounds: which library pages may be dropped, and operator overrides."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from spanline.writer import process_memory
from spanline.writer.process_memory import (
    _readonly_library_ranges,
    bound_arrow_pool,
    bound_glibc_heap,
    configure_engine_allocator,
    release_free_heap,
)

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
    assert process_memory.os.environ["JE_MALLOC_CONF"] == "dirty_decay_ms:5000"
    monkeypatch.delenv("JE_MALLOC_CONF")
    configure_engine_allocator()
    assert process_memory.os.environ["JE_MALLOC_CONF"] == process_memory.ENGINE_MALLOC_CONF


def test_glibc_heap_left_alone_when_the_operator_tuned_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=4")
    assert bound_glibc_heap() is False


@pytest.fixture
def restore_arrow_pool() -> Iterator[None]:
    import pyarrow as pa

    pool = pa.default_memory_pool()
    yield
    pa.set_memory_pool(pool)


@pytest.mark.usefixtures("restore_arrow_pool")
def test_arrow_buffers_come_from_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa

    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    pa.set_memory_pool(pa.mimalloc_memory_pool())
    assert bound_arrow_pool() == "system"
    assert pa.default_memory_pool().backend_name == "system"


@pytest.mark.usefixtures("restore_arrow_pool")
def test_arrow_pool_left_alone_when_the_operator_chose_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa

    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "mimalloc")
    pa.set_memory_pool(pa.mimalloc_memory_pool())
    assert bound_arrow_pool() == "mimalloc"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_free_heap_pages_go_back_to_the_kernel() -> None:
    # ~40 MB of blocks below the mmap threshold, the last one kept: the heap cannot shrink
    # from its top, only malloc_trim hands the free pages below that block back
    blocks = [bytes(16_000) for _ in range(2_500)]
    keep = blocks[-1]
    del blocks
    before = _anon_kb()
    assert release_free_heap() is True
    assert before - _anon_kb() > 10_000
    del keep


def _anon_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))
