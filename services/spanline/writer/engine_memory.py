"""The embedded engine's memory bounds, beside the process's own (core/process_memory.py).

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

from spanline.core.process_memory import libc_function

log = logging.getLogger(__name__)

ENGINE_MALLOC_CONF = "dirty_decay_ms:0,muzzy_decay_ms:0"
"""jemalloc options of the embedded engine: freed pages go back to the kernel at once."""

_MADV_DONTNEED = 4
_LIBRARY_SUFFIX = "_chdb.abi3.so"


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
    madvise = libc_function("madvise", (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int), ctypes.c_int)
    if madvise is None:
        return 0
    try:
        with open("/proc/self/smaps") as f:
            ranges = _readonly_library_ranges(f.read(), _LIBRARY_SUFFIX)
    except OSError:
        return 0
    advised = 0
    for start, end in ranges:
        if madvise(start, end - start, _MADV_DONTNEED) == 0:
            advised += 1
        else:
            log.info("engine pages not released", extra={"errno": ctypes.get_errno()})
            break
    return advised
