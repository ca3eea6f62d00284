"""The process-level memory bounds of the writer and the coldtier, and operator overrides."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from spanline.core.process_memory import (
    bound_arrow_pool,
    bound_glibc_heap,
    keep_pandas_out,
    release_free_heap,
)


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

    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "unset")  # restored (removed) afterwards
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL")
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


def _run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter: pandas and Arrow's pools are chosen once a process."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, check=False
    )


_ARROW_INTERNALS = """
import io
import sys
from spanline.core.process_memory import arrow_pool_from_glibc, bound_arrow_pool
if "{bound}" == "env":
    arrow_pool_from_glibc()
    assert "pyarrow" not in sys.modules  # processes that never use Arrow do not load it
elif "{bound}" == "pool":
    assert bound_arrow_pool() == "system"
import pyarrow as pa
import pyarrow.parquet as pq
table = pa.table({{"text": [str(i) * 50 for i in range(20_000)]}})
pq.write_table(table.take(pa.array(range(19_999, -1, -1))), io.BytesIO(), compression="zstd")
print(pa.mimalloc_memory_pool().max_memory())
"""


@pytest.mark.parametrize("bound", ["env", "pool", "no"])
def test_arrow_internals_allocate_from_glibc_too(bound: str) -> None:
    # Arrow's C++ default pool is picked once, at its first allocation: a fresh interpreter.
    # Unbound, the Parquet writer and the array builder use mimalloc (the check can fail).
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = _run_python(_ARROW_INTERNALS.format(bound=bound), env)
    assert done.returncode == 0, done.stderr[-2000:]
    mimalloc_peak = int(done.stdout.strip())
    assert (mimalloc_peak == 0) is (bound != "no"), mimalloc_peak


_SERVICE_IMPORTS = """
import sys
from spanline.core.process_memory import keep_pandas_out
assert keep_pandas_out() is True
import pyarrow as pa
import pyarrow.dataset  # imports pandas when it can
import pyiceberg.io.pyarrow
import chdb
assert pa.array([1, None, 3]).null_count == 1  # pyarrow's pandas check sees no pandas
try:
    import pandas
except ModuleNotFoundError as exc:
    assert "SPANLINE_LOAD_PANDAS=1" in str(exc), exc
else:
    raise AssertionError("pandas was imported")
print(sorted(m for m in sys.modules if m.split(".")[0] == "pandas"))
"""


def test_service_processes_run_their_libraries_without_pandas() -> None:
    done = _run_python(_SERVICE_IMPORTS, dict(os.environ))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_the_operator_may_let_pandas_in() -> None:
    done = _run_python(
        "from spanline.core.process_memory import keep_pandas_out\n"
        "assert keep_pandas_out() is False\n"
        "import pandas\n",
        {**os.environ, "SPANLINE_LOAD_PANDAS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_too_late_once_pandas_is_loaded() -> None:
    import pandas  # noqa: F401

    assert keep_pandas_out() is False
