"""The process-level memory bounds of the writer and the coldtier, and operator overrides."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from spanline.core.process_memory import bound_arrow_pool, bound_glibc_heap, release_free_heap


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
