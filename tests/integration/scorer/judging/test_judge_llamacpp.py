"""The judge protocol end to end against a real model: SmolLM2-135M served by llama.cpp.

Proves the protocol (JSON-schema structured output accepted by a real server, a
schema-valid verdict parsed, usage reconciled into the budget), never the quality of
verdicts: a 135M model says "pass" to nearly anything.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from spanline.core.broker import free_port
from spanline.scorer.judging.config import JudgeSettings
from spanline.scorer.judging.evaluators import load_evaluators
from spanline.scorer.judging.stage import JudgeStage
from tests.support import llama_judge
from tests.support.judge_traces import chat_trace

REASON = llama_judge.missing()
if REASON:
    print(f"\nSKIP real llama.cpp judge: {REASON}", file=sys.stderr)
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(REASON), reason=f"real llama.cpp judge: {REASON}"),
]


@pytest.fixture(scope="module")
def llama_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.llama_judge", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"llama.cpp judge did not start (exit code {proc.poll()})")
            time.sleep(0.2)
        yield url + "/v1"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_schema_valid_verdict_and_usage_accounted(llama_url: str) -> None:
    settings = JudgeSettings(
        enabled=True,
        base_url=llama_url,
        model="judge",
        sample_rate=1.0,
        output_mode="json_schema",
        daily_budget_tokens=50_000,  # self-hosted: a token cap, no prices
        max_tokens=400,  # room for the 600-character explanation the schema allows
        max_input_chars=3_000,
        timeout_s=60,
        max_attempts=2,
    )
    ev = load_evaluators()[0]
    stage = JudgeStage(settings, evaluators=[ev])
    try:
        scores = await stage.evaluate(chat_trace(1, error=True))
    finally:
        await stage.close()
    [score] = [s for s in scores if s.name == ev.name]
    a = dict(score.attributes)
    tokens = f"{a.get('spanline.judge.input_tokens')}+{a.get('spanline.judge.output_tokens')}"
    print(
        f"\nllama.cpp judge: label={score.score_label!r} calls={a.get('spanline.judge.calls')} "
        f"tokens={tokens}"
    )
    assert "error.type" not in a, a.get("error.type")
    assert score.score_label in ("pass", "fail") and score.score_value in (0.0, 1.0)
    assert a["spanline.judge.output_mode"] == "json_schema"
    assert a["spanline.judge.model"]  # the server names the model it ran
    in_tokens, out_tokens = int(a["spanline.judge.input_tokens"]), int(a["spanline.judge.output_tokens"])
    assert in_tokens > 100 and 0 < out_tokens <= settings.max_tokens * int(a["spanline.judge.calls"])
    # the reservation (estimate) was replaced by the server's usage
    assert stage.budget.spent("p1") == (0.0, in_tokens + out_tokens)
    assert stage.budget.remaining("p1") == (None, 50_000 - in_tokens - out_tokens)
