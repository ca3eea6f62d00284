"""Helper threads whose failures fail the test.

An exception (an ``assert`` included) raised in a plain ``threading.Thread`` only becomes
a pytest warning, and the test goes on against a load that is no longer running. Workers
keep the first exception of every thread and re-raise it in the test's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class WorkerFailed(AssertionError):
    """A helper thread raised; the original exception is the ``__cause__``."""


class Workers:
    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._errors: list[tuple[str, BaseException]] = []
        self._lock = threading.Lock()

    def start(self, target: Callable[..., Any], *args: Any) -> threading.Thread:
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:  # every failure must reach the test
                with self._lock:
                    self._errors.append((thread.name, exc))

        thread = threading.Thread(target=run, name=f"worker-{len(self._threads)}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def alive(self) -> int:
        return sum(1 for t in self._threads if t.is_alive())

    def join(self, timeout_s: float) -> None:
        for t in self._threads:
            t.join(timeout_s)
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            raise WorkerFailed(f"threads still running after {timeout_s}s: {stuck}")

    def raise_if_failed(self) -> None:
        with self._lock:
            errors = list(self._errors)
        if errors:
            name, exc = errors[0]
            raise WorkerFailed(f"{len(errors)} helper thread(s) failed; first: {name}: {exc!r}") from exc
