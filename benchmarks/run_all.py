"""`make bench`: every benchmark in one run, each writing benchmarks/results/<name>.json.

Figures from one run are comparable with each other (ratios); absolute numbers depend on
what else the shared machine is doing.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import time
import traceback

BENCHMARKS = (
    "benchmarks.ingest_bench",
    "benchmarks.ingest_http_bench",
    "benchmarks.redactor_bench",
    "benchmarks.redactor_accuracy",
    "benchmarks.redaction_recall",
    "benchmarks.writer_bench",
    "benchmarks.pipeline_bench",
    "benchmarks.scorer_bench",
    "benchmarks.coldtier_bench",
    "benchmarks.memory_bench",
    "benchmarks.alerter_bench",
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", default="", help="comma-separated subset, e.g. ingest_bench,pipeline_bench")
    args = ap.parse_args(argv)
    wanted = {f"benchmarks.{n.strip()}" for n in args.only.split(",") if n.strip()}
    failed = []
    for name in BENCHMARKS:
        if wanted and name not in wanted:
            continue
        print(f"\n##### {name}", flush=True)
        started = time.monotonic()
        try:
            module = importlib.import_module(name)
            entry = module.main
            code = entry([]) if inspect.signature(entry).parameters else entry()
            if isinstance(code, int) and code != 0:
                failed.append(name)
        except SystemExit as exc:
            if exc.code not in (0, None):
                failed.append(name)
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"##### {name} took {time.monotonic() - started:.0f}s", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
