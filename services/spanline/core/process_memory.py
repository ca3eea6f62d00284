"""Process-level memory bounds that no ClickHouse, Arrow or Kafka setting reaches: the writer
and the coldtier (both hold big batches) call them.

:func:`bound_glibc_heap` (the writer and the coldtier call it at start-up): Python, Arrow
buffers made from Python bytes and the span builder allocate through glibc's malloc, which
gives every thread that allocates its own arena (up to 8 per core) and, by default, raises
its mmap threshold to the largest block freed so far, so a freed 20 MB column buffer is
kept in an arena instead of unmapped. Under a drain both kept hundreds of MB that no batch
was using. Two arenas, and blocks of 1 MiB or more always mapped on their own (returned to
the kernel when freed), measured on the writer draining 150 000 heavy spans: peak anonymous
memory 636 MB instead of 701, throughput unchanged within the noise.

:func:`release_free_heap` (the shared consumer, for the writer and the coldtier, once a
batch is committed and no other is in flight or buffered:
``BatchPolicy.release_heap_when_idle``): the Kafka messages of a batch are ~13 KB blocks,
below the mmap threshold, so they live in the arenas' heaps. Freed, they are reused by the next batch,
but the heap cannot shrink past a block still in use above them: after a drain the
coldtier's main heap held ~180 MB of free memory for good. ``malloc_trim(0)`` gives the free
pages inside the heaps back (``MADV_DONTNEED``) as well as the top. Only when the pipeline
is idle: under a backlog the next batch would fault the same pages in again.

:func:`bound_arrow_pool` (the writer and the coldtier at start-up; every ``spanline run``
process sets the C++ side first thing, :func:`arrow_pool_from_glibc`): pyarrow's default pool is mimalloc,
which keeps freed segments per thread for reuse; the sorted copy, the Parquet buffers and
the compute kernels of every Iceberg commit run on worker threads, and the coldtier ended a
150 000-span drain with ~250 MB in mimalloc segments while Arrow counted 0 bytes allocated.
The system pool allocates through glibc, whose 1 MiB mmap threshold (above) unmaps every
column-sized buffer when it is freed.

:func:`keep_pandas_out` (every ``spanline run`` process, before it imports anything): pyarrow
imports pandas the first time it looks for pandas types (``pyarrow.dataset``, which
pyiceberg imports, and the first ``pa.array`` of a Python list), and chdb imports it too.
No service uses it, and it is ~30 MB of RSS in each process that loads it (coldtier idle
208 -> 176 MB). pyarrow treats a pandas that cannot be imported as absent; setting
``sys.modules["pandas"] = None`` instead breaks its shim (it gets ``None`` back).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.abc
import os
import sys
from typing import Any

# mallopt(3) parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
HEAP_ARENAS = 2
HEAP_MMAP_THRESHOLD = 1 << 20
HEAP_TRIM_THRESHOLD = 4 << 20
ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
PANDAS_ENV = "SPANLINE_LOAD_PANDAS"
"""Set to 1 to let a service process import pandas (a plug-in of the operator's that needs it)."""


@functools.cache
def libc_function(name: str, argtypes: tuple[Any, ...], restype: Any) -> Any:
    """A C library function with its signature (loaded once), or None off Linux or where the
    C library has no such function (musl has no ``malloc_trim``)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = list(argtypes)
    function.restype = restype
    return function


def bound_glibc_heap() -> bool:
    """Cap glibc's arenas and map large blocks on their own; True if glibc took the options.

    Call early: threads that already allocated keep their arena. A no-op elsewhere
    (musl, macOS) and when ``MALLOC_ARENA_MAX`` / ``GLIBC_TUNABLES`` were set by the operator.
    """
    if "MALLOC_ARENA_MAX" in os.environ or "GLIBC_TUNABLES" in os.environ:
        return False
    mallopt = libc_function("mallopt", (ctypes.c_int, ctypes.c_int), ctypes.c_int)
    if mallopt is None:
        return False
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
    trim = libc_function("malloc_trim", (ctypes.c_size_t,), ctypes.c_int)
    return trim is not None and bool(trim(0))


class _PandasLeftOut(importlib.abc.MetaPathFinder):
    """Answers every import of pandas with ModuleNotFoundError, before the path is searched."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname == "pandas" or fullname.startswith("pandas."):
            raise ModuleNotFoundError(
                f"spanline service processes do not load {fullname} (~30 MB of memory no service "
                f"uses); set {PANDAS_ENV}=1 to allow it",
                name=fullname,
            )


def keep_pandas_out() -> bool:
    """Make pandas unimportable in this process; True if it now is.

    False when the operator allowed it (:data:`PANDAS_ENV`) or it is loaded already (call
    before anything imports pyarrow's dataset module or chdb).
    """
    if os.environ.get(PANDAS_ENV) == "1" or "pandas" in sys.modules:
        return False
    if not any(isinstance(f, _PandasLeftOut) for f in sys.meta_path):
        sys.meta_path.insert(0, _PandasLeftOut())
    return True


def arrow_pool_from_glibc() -> None:
    """Have Arrow's C++ default pool be glibc's (see :func:`bound_arrow_pool`) without
    importing pyarrow: ingest, the redactor and the alerter never load it (~46 MB of RSS).

    Effective only before Arrow's first allocation: ``spanline run`` calls it first thing.
    """
    os.environ.setdefault(ARROW_POOL_ENV, "system")


def bound_arrow_pool() -> str:
    """Make glibc (the system pool) allocate Arrow's buffers; returns the pool's backend name.

    Arrow has two defaults. pyarrow's functions pass ``pa.default_memory_pool()``, which
    ``pa.set_memory_pool`` changes; Arrow's C++ code that is given no pool (the Parquet
    writer's page and compression buffers, arrays built from Python objects) takes the C++
    default, chosen from ``ARROW_DEFAULT_MEMORY_POOL`` the first time Arrow allocates
    anything and never again. Setting only the first left the coldtier with mimalloc's
    1 GiB arena and ~64 MB resident in it at its peak. So the variable is set as well, which
    reaches the C++ default only if Arrow has not allocated yet: ``spanline run`` sets it
    first thing (:func:`arrow_pool_from_glibc`), the writer and the coldtier call this at
    start (in-process runs and tests included).

    Left alone when the operator chose a pool with ``ARROW_DEFAULT_MEMORY_POOL``. Call
    before the first batch: a buffer is freed to the pool that allocated it, whatever the
    default is by then.
    """
    arrow_pool_from_glibc()
    ours = os.environ[ARROW_POOL_ENV] == "system"
    import pyarrow as pa

    if ours:
        pa.set_memory_pool(pa.system_memory_pool())
    return str(pa.default_memory_pool().backend_name)
