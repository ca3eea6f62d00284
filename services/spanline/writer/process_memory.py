"""Process-level memory bounds that no ClickHouse or Kafka setting reaches.

:func:`bound_glibc_heap` (the writer and the coldtier call it at start-up): Python, Arrow
buffers made from Python bytes and the span builder allocate through glibc's malloc, which
gives every thread that allocates its own arena (up to 8 per core) and, by default, raises
its mmap threshold to the largest block freed so far, so a freed 20 MB column buffer is
kept in an arena instead of unmapped. Under a drain both kept hundreds of MB that no batch
was using. Two arenas, and blocks of 1 MiB or more always mapped on their own (returned to
the kernel when freed), measured on the writer draining 150 000 heavy spans: peak anonymous
memory 636 MB instead of 701, throughput unchanged within the noise.

:func:`release_free_heap` (the coldtier after a commit that leaves nothing queued, the
writer after such an insert): the Kafka messages of a batch are ~13 KB blocks, below the
mmap threshold, so they live in the arenas' heaps. Freed, they are reused by the next batch,
but the heap cannot shrink past a block still in use above them: after a drain the
coldtier's main heap held ~180 MB of free memory for good. ``malloc_trim(0)`` gives the free
pages inside the heaps back (``MADV_DONTNEED``) as well as the top. Only when the pipeline
is idle: under a backlog the next batch would fault the same pages in again.

:func:`bound_arrow_pool` (the coldtier, at start-up): pyarrow's default pool is mimalloc,
which keeps freed segments per thread for reuse; the sorted copy, the Parquet buffers and
the compute kernels of every Iceberg commit run on worker threads, and the coldtier ended a
150 000-span drain with ~250 MB in mimalloc segments while Arrow counted 0 bytes allocated.
The system pool allocates through glibc, whose 1 MiB mmap threshold (above) unmaps every
column-sized buffer when it is freed.

The embedded engine:

chdb links its own jemalloc (symbols prefixed ``je_``, so it reads ``JE_MALLOC_CONF``, not
``MALLOC_CONF``) and is a ~550 MB shared library. Two things follow for the writer's RSS:

- jemalloc keeps freed pages ("dirty") for ``dirty_decay_ms`` (ClickHouse builds it with
  5 s) so the next allocation can reuse them. An insert of a 36 MB Arrow batch frees ~95 MB
  of working memory when it ends; with the default those pages stayed resident for seconds,
  long enough for the next insert and a merge to stack on top of them. :data:`ENGINE_MALLOC_CONF`
  returns them at once (measured: no change in insert time).
- Loading the library and starting the engine touch ~180 MB of its read-only pages (static
  initialisers of every function, format and table engine ClickHouse registers); inserts
  and merges use a fraction of them. :func:`release_startup_pages` unmaps the pages of the
  library's read-only mappings from the process once the engine is up (``MADV_DONTNEED``;
  ``MADV_PAGEOUT`` skips pages another process maps too, e.g. a ``spanline query``). Only
  mappings without a private (copy-on-write) page are touched, so nothing is lost: a page
  still in use is faulted back from the page cache (a minor fault) and stays. These pages
  are clean and the kernel may reclaim them under pressure anyway, so this changes what RSS
  shows more than what the machine could get back; the benchmarks record anonymous and
  file-backed RSS separately for that reason.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

ENGINE_MALLOC_CONF = "dirty_decay_ms:0,muzzy_decay_ms:0"
"""jemalloc options of the embedded engine: freed pages go back to the kernel at once."""

_MADV_DONTNEED = 4
# mallopt(3) parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
HEAP_ARENAS = 2
HEAP_MMAP_THRESHOLD = 1 << 20
HEAP_TRIM_THRESHOLD = 4 << 20
_LIBRARY_SUFFIX = "_chdb.abi3.so"
ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"


def bound_glibc_heap() -> bool:
    """Cap glibc's arenas and map large blocks on their own; True if glibc took the options.

    Call early: threads that already allocated keep their arena. A no-op elsewhere
    (musl, macOS) and when ``MALLOC_ARENA_MAX`` / ``GLIBC_TUNABLES`` were set by the operator.
    """
    if (
        not sys.platform.startswith("linux")
        or "MALLOC_ARENA_MAX" in os.environ
        or "GLIBC_TUNABLES" in os.environ
    ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return all(
        mallopt(param, value) == 1
        for param, value in (
            (_M_ARENA_MAX, HEAP_ARENAS),
            (_M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD),
            (_M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD),
        )
    )


def release_free_heap() -> bool:
    """Give glibc's free heap pages back to the kernel; True if any were (glibc only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))


def bound_arrow_pool() -> str:
    """Make glibc (the system pool) allocate Arrow's buffers; returns the pool's backend name.

    Left alone when the operator chose a pool with ``ARROW_DEFAULT_MEMORY_POOL``. Call
    before the first batch: a buffer is freed to the pool that allocated it, whatever the
    default is by then.
    """
    import pyarrow as pa

    if ARROW_POOL_ENV not in os.environ:
        pa.set_memory_pool(pa.system_memory_pool())
    return str(pa.default_memory_pool().backend_name)


def configure_engine_allocator() -> None:
    """Set the engine's jemalloc options unless the operator set their own.

    jemalloc reads them once, when chdb's library is loaded (the first embedded connection),
    so this must run before that; it is a no-op afterwards.
    """
    os.environ.setdefault("JE_MALLOC_CONF", ENGINE_MALLOC_CONF)


def _readonly_library_ranges(smaps: str, suffix: str) -> list[tuple[int, int]]:
    """Address ranges of ``suffix``'s mappings that are not writable and hold no private
    (anonymous, copy-on-write) page: paging those out can never lose data."""
    ranges: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    for line in smaps.splitlines():
        head = line.split(maxsplit=5)
        if head and "-" in head[0] and not head[0].endswith(":"):
            current = None
            if len(head) == 6 and head[5].endswith(suffix) and "w" not in head[1]:
                start, end = (int(x, 16) for x in head[0].split("-"))
                current = (start, end)
        elif current is not None and head and head[0] == "Anonymous:":
            if int(head[1]) == 0:
                ranges.append(current)
            current = None
    return ranges


def release_startup_pages() -> int:
    """Drop chdb's read-only library pages from the process; returns how many mappings
    were released. Best effort: outside Linux, or if madvise fails, nothing happens."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        with open("/proc/self/smaps") as f:
            ranges = _readonly_library_ranges(f.read(), _LIBRARY_SUFFIX)
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        madvise.restype = ctypes.c_int
    except (OSError, AttributeError):
        return 0
    advised = 0
    for start, end in ranges:
        if madvise(start, end - start, _MADV_DONTNEED) == 0:
            advised += 1
        else:
            log.info("engine pages not released", extra={"errno": ctypes.get_errno()})
            break
    return advised
