"""Secret formats (gitleaks' default providers): generated positives in several contexts,
near misses of each family, and the entropy rule of generic ``api_key=``/``token=`` pairs."""

from __future__ import annotations

import json
import random

import pytest

from benchmarks.fake_pii import NEAR_MISSES, SECRETS, secret_in_context
from spanline.redactor.detectors import BUILTIN_DETECTORS, Scanner, builtin_detectors
from spanline.redactor.detectors.secrets import shannon_entropy

SCANNER = Scanner(builtin_detectors(frozenset(BUILTIN_DETECTORS)))
PLAIN = Scanner(builtin_detectors(frozenset(BUILTIN_DETECTORS)), prefilter=False)


def findings(text: str) -> list[tuple[int, int, str]]:
    fast = SCANNER.scan(text)
    assert fast == PLAIN.scan(text), text  # the prefilter's triggers are a superset
    return fast


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_generated_secrets_are_fully_covered(kind: str) -> None:
    rng = random.Random(kind)
    for _ in range(25):
        value = SECRETS[kind](rng)
        text, at = secret_in_context(kind, value, rng)
        found = findings(text)
        covered = any(s <= at and at + len(value) <= e for s, e, _ in found)
        # a credential written as "api_key=<value>" is found as a credential or as its own kind
        assert covered, (kind, text, found)
        if kind not in ("credential", "private_key"):
            assert any(d == kind for s, e, d in found if s <= at < e), (kind, text, found)


@pytest.mark.parametrize("kind", sorted(NEAR_MISSES))
def test_near_misses_are_not_reported_as_that_kind(kind: str) -> None:
    rng = random.Random(kind)
    for _ in range(10):
        value = NEAR_MISSES[kind](rng)
        text = f"api_key={value}" if kind == "credential" else f"the value {value} is not a key"
        assert not [d for _, _, d in findings(text) if d == kind], (kind, text)


@pytest.mark.parametrize(
    "text",
    [
        "stripe: sk_live_4eC39HqLyjWDarjtT1zdp7dc",  # 24-character body
        "rk_live_51HcXYZabcdefGHIJklmnOPQR",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    ],
)
def test_short_body_stripe_keys(text: str) -> None:
    assert [d for _, _, d in findings(text)] == ["stripe_key"]


@pytest.mark.parametrize(
    "text",
    [
        "api_key=None",
        "token: string",
        "secret=hello",
        "api_key: ********",
        "max_tokens: 512, input_tokens=12",
    ],
)
def test_generic_pairs_need_entropy_or_a_password_key(text: str) -> None:
    assert findings(text) == []


@pytest.mark.parametrize(
    "text,value", [("password=hunter2", "hunter2"), ("api_key=q8ZtR2vK9mLx", "q8ZtR2vK9mLx")]
)
def test_generic_pairs_found(text: str, value: str) -> None:
    assert [(text[s:e], d) for s, e, d in findings(text)] == [(value, "credential")]


def test_azure_storage_key_only_the_key_part() -> None:
    key = "A" * 40 + "b1" * 23 + "=="
    text = f"DefaultEndpointsProtocol=https;AccountName=x;AccountKey={key};EndpointSuffix=core.windows.net"
    assert [(text[s:e], d) for s, e, d in findings(text)] == [(key, "azure_storage_key")]


def test_entropy() -> None:
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == 2.0


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_secrets_inside_json_escapes_are_masked(kind: str) -> None:
    """A tool result holding JSON that holds the secret after an escaped newline: the value
    is a JSON string inside a JSON string, so it reaches the engine with two escape levels."""
    from spanline.redactor.engine import Redactor

    value = SECRETS[kind](random.Random(kind))
    inner = json.dumps({"log": f"loaded config\n{kind} = {value}\n"})
    doc = json.dumps([{"role": "tool", "content": inner}])
    for redactor in (Redactor(), Redactor(fast_paths=False)):
        out, _ = redactor.redact_text(doc, "p", key="gen_ai.input.messages")
        decoded = json.loads(json.loads(out)[0]["content"])["log"]
        assert value not in decoded and value.split("\n")[0] not in out, (kind, decoded)


def test_credential_trigger_covers_every_key_the_detector_reads() -> None:
    """Keys spelt every way re.IGNORECASE reads them (case, Unicode folds, separators,
    suffixes within the 40-character budget): wherever the credential detector finds a
    value, its trigger fires (findings() checks the fast scan against the plain one)."""
    rng = random.Random("credential-trigger")
    folds = {"s": "\u017f", "k": "\u212a", "i": "\u0131", "I": "\u0130"}
    words = (
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "secret",
        "api_key",
        "accesskey",
        "private-key",
        "auth_token",
        "refresh-token",
        "token",
        "credential",
        "credentials",
    )
    found = 0
    for _ in range(3000):
        word = "".join(
            folds.get(c, c) if rng.random() < 0.15 else (c.upper() if rng.random() < 0.3 else c)
            for c in rng.choice(words)
        )
        tail = rng.choice(["", "_1", ".prod", "-x", "_V2_backup", "s", "_" + "a" * 38, "_" + "b" * 39])
        key = rng.choice(["", "db.", "my_", "X-"]) + word + tail
        sep = rng.choice(["=", ": ", '": "', "' = '", "\n:", "\t="])
        value = rng.choice(["Zx8f7a6s5d4f3g2h1jQ", "hunter2hunter2", "9f8e7d6c5b4a39281706"])
        if any(d == "credential" for _s, _e, d in findings(f"{key}{sep}{value}")):
            found += 1
    assert found > 1000


def test_token_counts_do_not_trigger_the_credential_detector() -> None:
    """GenAI usage and invocation parameters ("max_tokens": 1024) are in nearly every LLM
    payload; firing the trigger on them sent every such span down the slow path."""
    from spanline.redactor.detectors.secrets import CredentialDetector
    from spanline.redactor.prefilter import Prefilter

    prefilter = Prefilter(
        [[(None, CredentialDetector.triggers[0][0], CredentialDetector.triggers[0][1])]],
        sensitive_keys=False,
        json_nesting=4,
        max_bytes=1 << 20,
    )
    doc = {"max_tokens": 1024, "usage": {"prompt_tokens": 66, "completion_tokens": 51, "total_tokens": 117}}
    assert prefilter.clean_text(json.dumps(doc))
    assert not prefilter.clean_text(json.dumps({"api_key": "Zx8f7a6s5d4f3g2h1jQ"}))
