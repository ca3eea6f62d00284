"""Where a service's CPU goes, all threads included: a sampling profiler for benchmark runs.

cProfile sees only the main thread, but the writer builds and inserts in a worker thread
and the coldtier commits to Iceberg in one. This samples every thread's stack every few
milliseconds (``sys._current_frames``), skips threads parked in a known wait (epoll, a
lock, a queue), and writes the stacks it saw as "collapsed" lines (``frame;frame;... N``,
the flame-graph input format) plus a top list of the functions that were on CPU.

    python -m benchmarks.stack_sampler OUT.txt -m spanline.cli.main run writer ...

``benchmarks/harness.py`` runs each service under it when ``BENCH_SAMPLE_DIR`` is set.
Sampling costs a few per cent of one core; figures are shares, not absolute times.
"""

from __future__ import annotations

import atexit
import collections
import runpy
import sys
import threading
import time
from collections import Counter
from types import FrameType

INTERVAL_S = 0.005
# the innermost frames of a thread that is waiting, not computing
_WAITS = (
    ("selectors.py", "select"),
    ("threading.py", "wait"),
    ("threading.py", "_wait_for_tstate_lock"),
    ("queue.py", "get"),
    ("thread.py", "_worker"),
    ("base_events.py", "_run_once"),
)


def _stack(frame: FrameType | None) -> list[str]:
    out: list[str] = []
    while frame is not None:
        code = frame.f_code
        out.append(f"{code.co_name} ({code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno})")
        frame = frame.f_back
    out.reverse()
    return out


def _waiting(frame: FrameType) -> bool:
    code = frame.f_code
    return any(code.co_filename.endswith(f) and code.co_name == n for f, n in _WAITS)


class Sampler:
    def __init__(self, out_path: str) -> None:
        self.out_path = out_path
        self.stacks: collections.Counter[str] = collections.Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stack-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()
        atexit.register(self.write)

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(INTERVAL_S):
            self.samples += 1
            if self.samples % 1000 == 0:
                self.write(final=False)  # a process killed at the end still leaves its stacks
            for ident, frame in sys._current_frames().items():
                if ident == me or _waiting(frame):
                    continue
                self.stacks[";".join(_stack(frame))] += 1

    def write(self, final: bool = True) -> None:
        if final:
            self._stop.set()
        own: collections.Counter[str] = collections.Counter()
        total = sum(self.stacks.values()) or 1
        for stack, n in list(self.stacks.items()):
            seen = set()
            for frame in stack.split(";"):
                name = frame.split(" (")[0] + " (" + frame.split(" (")[1].split(":")[0] + ")"
                if name not in seen:
                    own[name] += n
                    seen.add(name)
        with open(self.out_path, "w") as out:
            out.write(f"# {self.samples} ticks of {INTERVAL_S * 1000:.0f} ms, {total} busy thread samples\n")
            out.write("# inclusive share of busy samples per function:\n")
            for name, n in own.most_common(60):
                out.write(f"#  {100 * n / total:5.1f}%  {name}\n")
            for stack, n in Counter(dict(self.stacks)).most_common():
                out.write(f"{stack} {n}\n")


def main() -> None:
    if len(sys.argv) < 4 or sys.argv[2] != "-m":
        sys.exit("usage: python -m benchmarks.stack_sampler OUT.txt -m MODULE [ARGS...]")
    out, module = sys.argv[1], sys.argv[3]
    sys.argv = [module, *sys.argv[4:]]
    Sampler(out).start()
    time.sleep(0)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
