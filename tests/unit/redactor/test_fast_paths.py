"""The engine's fast paths change nothing: same messages, same reports as the reference walk.

``Redactor(fast_paths=False)`` walks every element, parses every JSON document and scans
every text on its own (the algorithm before the prefilter skipped anything). These tests
run both on generated data built to hit the corners the fast paths reason about: JSON
escapes (``\\u``, surrogate pairs, ``\\\\n``), JSON inside JSON, sensitive keys spelled with
Unicode case folds or a trailing newline, long integers, invalid UTF-8 in ``bytes_value``,
detector look-alikes behind word characters, client-sent ``spanline.redaction``, deny and
allow lists, pseudonyms, drop actions, too-deep JSON and the string length limit. The
generator is seeded, so a failure names its seed and reproduces.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from spanline.redactor.detectors import BUILTIN_DETECTORS, SENSITIVE_KEY, Scanner, builtin_detectors
from spanline.redactor.detectors.scanner import HYPERSCAN_AVAILABLE
from spanline.redactor.engine import REDACTION_ATTR, Limits, RedactionError, Redactor
from spanline.redactor.json_literals import candidate_values
from spanline.redactor.policy import parse_policy
from spanline.redactor.prefilter import SENSITIVE_KEY_ENDINGS, Prefilter, json_view_list, unescape_json

pytestmark = pytest.mark.skipif(not HYPERSCAN_AVAILABLE, reason="the fast paths need hyperscan")

DATA = Path(__file__).resolve().parents[2] / "data"
CORPUS = [
    json.loads(line)["text"]
    for name in ("pii_corpus.jsonl", "secrets_corpus.jsonl")
    for line in (DATA / name).read_text(encoding="utf-8").splitlines()
    if line.strip()
]

FRAGMENTS = [
    "gpt-4o-2024-08-06",
    "claude-sonnet-4-5-20250929",
    "call_8b5ab3ee4265bb3153740902",
    "chatcmpl-0cb1658cda1495e60af5",
    "conv_cd0216353d03",
    "call_ee4265bb3153740902de89",
    "x_GB82WEST12345698765432",
    "-GB82WEST12345698765432",
    "\u00e9GB82 WEST 1234 5698 7654 32",
    "DE89 3704 0044 0532 0130 00",
    "de89370400440532013000",
    "4111 1111 1111 1111",
    "a4111111111111111",
    "_4111111111111111",
    ".4111111111111111",
    "-4111-1111-1111-1111",
    "\u00e94111111111111111",
    "(415) 555-2671",
    "+44\u00a020\u00a07946\u00a00958",
    "call me: 555-123-4567",
    "2024-03-15 10:45:12",
    "v1.2.3.4",
    "10.1.2.3",
    "fe80::1",
    "2001:db8::8a2e:370:7334",
    "219-09-9999",
    "ssn 123456789",
    "alice@example.com",
    "b\u00fccher@b\u00fccher.de",
    "x@[10.0.0.1]",
    "user@localhost",
    "postgres://app:Sup3rS3cret@db.internal:5432/app",
    "Authorization: Bearer abcdef1234567890",
    "password=hunter22",
    '"api_key": "k-123456"',
    "sk-proj-Ab3dEfGh1jKlMnOpQrStUvWxYz0123456789AbCd",
    "task-Ab3dEfGh1jKlMnOpQrStUvWxYz0123456789",
    "AKIAIOSFODNN7EXAMPLE",
    "aws secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "ghp_0123456789abcdefghijklmnopqrstuvwxyz",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlMTIz",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "Hello, I need help with my order",
    "Hello mr\u017f Anna Schmidt",
    "Hi, Dr. \u0141ukasz Nowak",
    "Sehr geehrte Frau M\u00fcller",
    "Liebe \u00c4nne,",
    "Dear Customer",
    "ref-12345678Z",
    "x12345678Z",
    "id:AB123456C",
    "-RSSMRA85T10A562S",
    "n\u00b02 55 08 14 168 025 38",
    "<EMAIL>",
    "<CARD:9f3a1c2b>",
    REDACTION_ATTR,
    "token_count",
    "\\u0040",
    "\\",
    '"',
    "\n",
    "\t",
    "/",
    "\ud83d\ude00",
    "\u2019",
    "",
]

KEYS = [
    "role",
    "content",
    "type",
    "id",
    "arguments",
    "max_tokens",
    "input_tokens",
    "password",
    "PASSWORD",
    "pa\u017fsword",
    "db.password\n",
    "client_secret",
    "api-\u212aey",
    "x-api-key",
    "Authorization",
    "author\u0131zation",
    "session_token",
    "token",
    "tokens",
    "set-cookie",
    "credentials",
    "keyboard",
    "http.request.header.cookie",
    "alice@example.com",
    "card 4111 1111 1111 1111",
    "Content-Type",
    REDACTION_ATTR,
    "enduser.id",
    "",
]


def _text(rng: random.Random) -> str:
    parts: list[str] = []
    for _ in range(rng.randrange(1, 5)):
        roll = rng.random()
        if roll < 0.3:
            parts.append(rng.choice(FRAGMENTS))
        elif roll < 0.5:
            parts.append(rng.choice(CORPUS))
        elif roll < 0.6:
            parts.append(str(rng.choice([1, -1]) * rng.randrange(10**12)))
        else:
            parts.append(
                " ".join(rng.choice(["the", "order", "is", "late", "AT", "be", "id", "ok"]) for _ in range(4))
            )
    sep = rng.choice(["", " ", "\n", '"', "_", "-", ":", "\\", "\u00e9"])
    text = sep.join(parts)
    if rng.random() < 0.05:
        text += "\ud800"  # a lone surrogate: only reachable through a JSON \u escape
    return text


def _json_value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth > 0 and roll < 0.25:
        return {rng.choice(KEYS): _json_value(rng, depth - 1) for _ in range(rng.randrange(0, 4))}
    if depth > 0 and roll < 0.45:
        return [_json_value(rng, depth - 1) for _ in range(rng.randrange(0, 4))]
    if depth > 0 and roll < 0.55:
        return _json_text(rng, depth - 1)  # JSON inside a JSON string
    if roll < 0.65:
        return rng.choice([0, 7, 10**8, 4111111111111111, -(10**9) - 7, 5551234567, 1718000000])
    if roll < 0.7:
        return rng.choice([True, False, None, 1.5, 1e20])
    return _text(rng)


def _json_text(rng: random.Random, depth: int) -> str:
    doc = _json_value(rng, depth)
    if not isinstance(doc, dict | list):
        doc = [doc]
    style = rng.randrange(4)
    if style == 0:
        out = json.dumps(doc)
    elif style == 1:
        out = json.dumps(doc, ensure_ascii=False)
    elif style == 2:
        out = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    else:
        out = json.dumps(doc, indent=2)
    if rng.random() < 0.05:
        out = out[: max(1, len(out) // 2)]  # looks like JSON, is not
    return rng.choice(["", " ", "\n"]) + out


def _utf8(s: str) -> str:
    """Protobuf strings are UTF-8: a lone surrogate cannot be stored raw."""
    return s.encode("utf-8", "replace").decode("utf-8")


def _any_value(rng: random.Random, depth: int) -> AnyValue:
    roll = rng.random()
    if depth > 0 and roll < 0.1:
        return AnyValue(
            array_value=ArrayValue(values=[_any_value(rng, depth - 1) for _ in range(rng.randrange(3))])
        )
    if depth > 0 and roll < 0.2:
        values = [KeyValue(key=_utf8(rng.choice(KEYS)), value=_any_value(rng, depth - 1)) for _ in range(2)]
        return AnyValue(kvlist_value=KeyValueList(values=values))
    if roll < 0.3:
        return AnyValue(int_value=rng.choice([3, 10**8 - 1, 10**8, 4111111111111111, -5551234567, 2**62]))
    if roll < 0.35:
        return AnyValue(double_value=0.7)
    if roll < 0.4:
        return AnyValue(bool_value=True)
    if roll < 0.47:
        raw = _utf8(_text(rng)).encode()
        if rng.random() < 0.5:
            raw = raw[:3] + b"\xff\xc2" + raw[3:]  # invalid UTF-8 is allowed in bytes
        return AnyValue(bytes_value=raw)
    if roll < 0.7:
        return AnyValue(string_value=_utf8(_json_text(rng, 3)))
    return AnyValue(string_value=_utf8(_text(rng)))


def _attributes(rng: random.Random, n: int) -> list[KeyValue]:
    return [KeyValue(key=_utf8(rng.choice(KEYS)), value=_any_value(rng, 2)) for _ in range(n)]


def _traces(rng: random.Random) -> TracesData:
    td = TracesData()
    for _ in range(rng.randrange(1, 3)):
        rs = td.resource_spans.add()
        rs.resource.attributes.extend(_attributes(rng, rng.randrange(3)))
        ss = rs.scope_spans.add()
        ss.scope.name = "scope"
        ss.scope.attributes.extend(_attributes(rng, rng.randrange(2)))
        for _ in range(rng.randrange(1, 4)):
            span = ss.spans.add(
                trace_id=rng.randbytes(16),
                span_id=rng.randbytes(8),
                name=_utf8(rng.choice(["chat", _text(rng)])),
            )
            span.attributes.extend(_attributes(rng, rng.randrange(6)))
            if rng.random() < 0.3:
                event = span.events.add(name=_utf8(_text(rng)))
                event.attributes.extend(_attributes(rng, 2))
            if rng.random() < 0.2:
                link = span.links.add(trace_id=rng.randbytes(16), span_id=rng.randbytes(8))
                link.attributes.extend(_attributes(rng, 2))
            if rng.random() < 0.3:
                span.status.message = _utf8(_text(rng))
    return td


def _logs(rng: random.Random) -> LogsData:
    ld = LogsData()
    rl = ld.resource_logs.add()
    rl.resource.attributes.extend(_attributes(rng, rng.randrange(3)))
    sl = rl.scope_logs.add()
    for _ in range(rng.randrange(1, 4)):
        record = sl.log_records.add()
        if rng.random() < 0.8:
            record.body.CopyFrom(_any_value(rng, 2))
        record.attributes.extend(_attributes(rng, rng.randrange(4)))
        if rng.random() < 0.5:
            record.event_name = _utf8(rng.choice(["gen_ai.user.message", _text(rng)]))
    return ld


POLICIES: dict[str, dict[str, Any]] = {
    "default": {},
    "pseudonyms_and_drops": {
        "default_action": "pseudonymize",
        "detectors": {"card": "drop", "credential": "drop", "ip": "off"},
    },
    "deny_list": {"attributes": {"mode": "deny", "keys": ["enduser.*", "*.cookie", "Content-Type"]}},
    "allow_list": {"attributes": {"mode": "allow", "keys": ["gen_ai.*", "role", "content"]}},
    "no_credential": {"detectors": {"credential": "off", "email": "drop"}},
}


def _pair(policy: str, limits: Limits | None = None) -> tuple[Redactor, Redactor]:
    parsed = parse_policy(POLICIES[policy])
    return (
        Redactor(parsed, pseudonym_secret="s3cret", limits=limits),
        Redactor(parsed, pseudonym_secret="s3cret", limits=limits, fast_paths=False),
    )


def _outcome(redactor: Redactor, payload: bytes, signal: str) -> tuple[object, ...]:
    try:
        out, report = redactor.redact_payload(payload, signal, "p")  # type: ignore[arg-type]
    except RedactionError as exc:
        return ("error", type(exc).__name__, str(exc))
    message = TracesData() if signal == "traces" else LogsData()
    message.ParseFromString(out)
    return ("ok", message, sorted(report.counts.items()))


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_generated_messages_redact_identically(policy: str) -> None:
    fast, reference = _pair(policy)
    for seed in range(120):
        rng = random.Random(f"{policy}-{seed}")
        for signal, message in (("traces", _traces(rng)), ("logs", _logs(rng))):
            payload = message.SerializeToString()
            assert _outcome(fast, payload, signal) == _outcome(reference, payload, signal), (
                policy,
                seed,
                signal,
            )


def test_limits_behave_identically() -> None:
    """Too-deep JSON falls back to text and over-long strings fail, with or without fast paths."""
    fast, reference = _pair("default", Limits(max_json_depth=3, max_string_chars=400))
    errors = 0
    for seed in range(150):
        rng = random.Random(f"limits-{seed}")
        payload = _traces(rng).SerializeToString()
        expected = _outcome(reference, payload, "traces")
        assert _outcome(fast, payload, "traces") == expected, seed
        errors += expected[0] == "error"
    assert 0 < errors < 150  # both outcomes were exercised


@pytest.mark.parametrize("policy", ["default", "pseudonyms_and_drops"])
def test_generated_values_redact_identically(policy: str) -> None:
    fast, reference = _pair(policy)
    for seed in range(400):
        rng = random.Random(f"value-{seed}")
        value = _json_text(rng, 4) if seed % 2 else _text(rng)
        key = rng.choice([None, "gen_ai.input.messages", "password"])
        assert fast.redact_text(value, "p", key=key) == reference.redact_text(value, "p", key=key), seed


def test_corpus_lines_in_json_and_otlp_redact_identically() -> None:
    fast, reference = _pair("default")
    for i in range(0, len(CORPUS), 3):
        text = CORPUS[i]
        doc = json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": text}]}], ensure_ascii=i % 2 == 0
        )
        assert fast.redact_text(doc, "p") == reference.redact_text(doc, "p"), text
        td = TracesData()
        span = td.resource_spans.add().scope_spans.add().spans.add(name="chat")
        span.attributes.extend(
            [
                KeyValue(key="gen_ai.input.messages", value=AnyValue(string_value=doc)),
                KeyValue(key="note", value=AnyValue(string_value=text)),
            ]
        )
        payload = td.SerializeToString()
        assert _outcome(fast, payload, "traces") == _outcome(reference, payload, "traces"), text


@pytest.mark.parametrize("plant_pii", [False, True])
def test_loadgen_traffic_redacts_identically(plant_pii: bool) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from benchmarks.redactor_bench import loadgen_payloads

    payloads, _ = loadgen_payloads(400, plant_pii)
    fast, reference = _pair("default")
    unchanged = 0
    for payload in payloads:
        assert _outcome(fast, payload, "traces") == _outcome(reference, payload, "traces")
        unchanged += fast.redact_payload(payload, "traces", "p")[0] is payload
    assert unchanged > 0 if not plant_pii else True


def test_unchanged_payload_is_returned_as_is_and_client_attribute_still_removed() -> None:
    redactor = Redactor()
    td = TracesData()
    span = td.resource_spans.add().scope_spans.add().spans.add(name="chat")
    span.attributes.append(
        KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="gpt-4o-2024-08-06"))
    )
    payload = td.SerializeToString()
    out, report = redactor.redact_payload(payload, "traces", "p")
    assert out is payload and not report.counts
    span.attributes.append(KeyValue(key=REDACTION_ATTR, value=AnyValue(string_value="email=0")))
    out, _ = redactor.redact_payload(td.SerializeToString(), "traces", "p")
    parsed = TracesData()
    parsed.ParseFromString(out)
    assert [kv.key for kv in parsed.resource_spans[0].scope_spans[0].spans[0].attributes] == [
        "gen_ai.request.model"
    ]


# -- the building blocks -----------------------------------------------------------------


def test_json_views_expose_every_decoded_leaf() -> None:
    """What json.loads yields for a string leaf is a substring of the views, at any nesting."""
    for seed in range(300):
        rng = random.Random(f"views-{seed}")
        leaf = _text(rng) + rng.choice(
            ["", "\\", '"', "\\n", "\U0001f600", "\ud83d\ude00", "\ud800x", "\\u0040"]
        )
        inner = json.dumps({"k": [leaf]}, ensure_ascii=rng.random() < 0.5)
        outer = json.dumps([inner, {"x": inner}], ensure_ascii=rng.random() < 0.5)
        wrapped = b"\x0a" + bytes([len(outer) % 128]) + outer.encode("utf-8", "surrogatepass")
        views = b"\n".join(json_view_list(wrapped, 4))
        decoded_inner = json.loads(outer)[0]
        decoded_leaf = json.loads(decoded_inner)["k"][0]  # surrogate pairs escaped apart come back joined
        assert decoded_inner.encode("utf-8", "surrogatepass") in views, seed
        assert decoded_leaf.encode("utf-8", "surrogatepass") in views, seed


def test_unescape_json_decodes_like_json() -> None:
    for s in ["a\\\\nb", 'q\\"', "\\ud83d\\ude00", "\\ud800\\u0041", "\\u00e9\\/\\b\\f\\t\\r", "\\\\\\n"]:
        doc = f'"{s}"'
        assert unescape_json(doc.encode()) == f'"{json.loads(doc)}"'.encode("utf-8", "surrogatepass"), s


def test_sensitive_key_patterns_cover_the_key_regex() -> None:
    """Every key SENSITIVE_KEY accepts is caught in JSON and in a serialised KeyValue."""
    prefilter = Prefilter([], sensitive_keys=True, json_nesting=4, max_bytes=1 << 20)
    rng = random.Random(7)
    folds = {"s": "\u017f", "k": "\u212a", "i": "\u0131", "I": "\u0130"}
    checked = 0
    for _ in range(3000):
        word = rng.choice((*SENSITIVE_KEY_ENDINGS, "client_secret", "x-api-key", "api_key", "refresh-token"))
        word = "".join(
            folds.get(c, c) if rng.random() < 0.2 else (c.upper() if rng.random() < 0.3 else c) for c in word
        )
        key = (
            rng.choice(["", "db.", "x_", "a-", "my ", "http.request.header."])
            + word
            + rng.choice(["", "\n", "s"])
        )
        if SENSITIVE_KEY.search(key) is None:
            continue
        checked += 1
        assert not prefilter.clean_text(json.dumps({key: "v"}, ensure_ascii=rng.random() < 0.5)), key
        kv = KeyValue(key=key, value=AnyValue(string_value="v")).SerializeToString()
        assert prefilter.flag_elements([kv], set(), not_keyvalues=()) != set(), key
    assert checked > 1000


def test_element_triggers_fire_wherever_a_finding_can_be() -> None:
    """Context-aware triggers are a superset of findings: as text, as a JSON leaf, as a protobuf string."""
    scanner = Scanner(builtin_detectors(frozenset(BUILTIN_DETECTORS)), prefilter=False)
    prefilter = Prefilter(
        Scanner(builtin_detectors(frozenset(BUILTIN_DETECTORS))).element_trigger_groups(),
        sensitive_keys=False,
        json_nesting=4,
        max_bytes=1 << 20,
    )
    texts = CORPUS + FRAGMENTS
    for text in texts:
        findings = scanner.scan(text)
        if not findings:
            continue
        assert not prefilter.clean_text(json.dumps([text], ensure_ascii=False)), text
        for kv in (
            KeyValue(key="k", value=AnyValue(string_value=text)),
            KeyValue(key="k", value=AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=text)]))),
        ):
            assert prefilter.flag_elements([kv.SerializeToString()], set(), not_keyvalues=()) != set(), text


def test_scanner_flags_every_text_with_a_finding() -> None:
    scanner = Scanner(builtin_detectors(frozenset(BUILTIN_DETECTORS)))
    texts = CORPUS + FRAGMENTS
    for batch in range(0, len(texts), 12):
        chunk = texts[batch : batch + 12]
        flagged = scanner.flag_texts(chunk)
        assert flagged is not None  # (None would mean "all": too many hits to locate them)
        for index, text in enumerate(chunk):
            expected = scanner.scan(text)
            if expected:
                assert index in flagged, text
            if index in flagged:
                assert scanner.scan_triggered(text, flagged[index]) == expected, text


def test_masks_are_not_flagged_again() -> None:
    assert re.fullmatch(r"<[A-Z_]+>", "<EMAIL>")
    out, _ = Redactor().redact_text(json.dumps({"a": "<EMAIL> and <CARD:9f3a1c2b>"}), "p")
    assert json.loads(out) == {"a": "<EMAIL> and <CARD:9f3a1c2b>"}


def test_json_in_json_with_a_sensitive_key_the_triggers_do_not_see() -> None:
    """'cookie' is no trigger word: the inner document must be walked because it is JSON."""
    fast, reference = _pair("default")
    inner = json.dumps({"set-cookie": "abc"})
    for doc in (json.dumps([inner]), json.dumps({"headers": inner}), json.dumps({"h": [inner, "x"]})):
        out, report = fast.redact_text(doc, "p")
        assert (out, report) == reference.redact_text(doc, "p")
        assert "abc" not in out and report.counts


def test_bytes_values_are_always_walked() -> None:
    """Undecodable bytes are scanned as surrogate escapes, not as the raw bytes: no shortcut."""
    prefilter = Prefilter([], sensitive_keys=True, json_nesting=4, max_bytes=1 << 20)
    for raw in (b"", b"plain", b"\xff\xfe"):
        kv = KeyValue(key="k", value=AnyValue(bytes_value=raw))
        assert prefilter.flag_elements([kv.SerializeToString()], set(), not_keyvalues=()) != set()
        nested = KeyValue(key="k", value=AnyValue(array_value=ArrayValue(values=[AnyValue(bytes_value=raw)])))
        assert prefilter.flag_elements([nested.SerializeToString()], set(), not_keyvalues=()) != set()


def _conversation_docs(rng: random.Random) -> list[str]:
    """``gen_ai.input.messages`` of successive chat spans: each array extends the previous one."""
    items = [_json_value(rng, 3) for _ in range(rng.randrange(1, 6))]
    style: dict[str, Any] = rng.choice([{}, {"ensure_ascii": False}, {"separators": (",", ":")}])
    docs = [json.dumps(items[:k], **style) for k in range(1, len(items) + 1)]
    roll = rng.random()
    if roll < 0.15:
        docs.append(docs[-1][:-1] + ",]")  # a trailing comma: not JSON
    elif roll < 0.3:
        docs.append(docs[-1][:-1] + ", " + json.dumps([[[[["deep", _text(rng)]]]]]) + "]")
    elif roll < 0.4:
        docs.append(docs[-1][:-1] + ", {}] ")  # trailing space: never taken as a known prefix
    elif roll < 0.5:
        docs.append(docs[-1])  # the same array again
    rng.shuffle(docs) if rng.random() < 0.2 else None
    return docs


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_growing_conversations_redact_identically(policy: str) -> None:
    """Arrays that extend an array already redacted in the same message reuse its items."""
    for limits in (None, Limits(max_json_depth=4)):
        fast, reference = _pair(policy, limits)
        for seed in range(60):
            rng = random.Random(f"conversation-{policy}-{seed}")
            td = TracesData()
            ss = td.resource_spans.add().scope_spans.add()
            for doc in _conversation_docs(rng):
                span = ss.spans.add(trace_id=b"\x01" * 16, span_id=rng.randbytes(8), name="chat")
                key = rng.choice(["gen_ai.input.messages", "gen_ai.input.messages", "password"])
                span.attributes.append(KeyValue(key=key, value=AnyValue(string_value=_utf8(doc))))
                if rng.random() < 0.3:  # two documents in one attribute
                    value = AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=_utf8(doc))] * 2))
                    span.attributes.append(KeyValue(key="gen_ai.prompt", value=value))
            payload = td.SerializeToString()
            assert _outcome(fast, payload, "traces") == _outcome(reference, payload, "traces"), (policy, seed)


def test_known_prefix_carries_its_own_drop_flag_only() -> None:
    """A document that follows a dropping one in the same attribute does not inherit its drop."""
    fast, reference = _pair("no_credential")  # email: drop
    td = TracesData()
    ss = td.resource_spans.add().scope_spans.add()
    first = ss.spans.add(name="chat")
    phone = {"a": "call +44 20 7946 0958"}  # masked, not dropped
    docs = [json.dumps([phone]), json.dumps(["mail alice@example.com"])]  # walked last to first
    values = ArrayValue(values=[AnyValue(string_value=d) for d in docs])
    first.attributes.append(KeyValue(key="gen_ai.prompt", value=AnyValue(array_value=values)))
    second = ss.spans.add(name="chat")
    grown = json.dumps([phone, {"b": "alice@example.com"}, {"c": 3}])
    second.attributes.append(KeyValue(key="gen_ai.input.messages", value=AnyValue(string_value=grown)))
    third = ss.spans.add(name="chat")
    clean = json.dumps([phone, {"c": 3}])
    third.attributes.append(KeyValue(key="gen_ai.input.messages", value=AnyValue(string_value=clean)))
    payload = td.SerializeToString()
    outcome = _outcome(fast, payload, "traces")
    assert outcome == _outcome(reference, payload, "traces")
    spans = outcome[1].resource_spans[0].scope_spans[0].spans  # type: ignore[attr-defined]
    assert [kv.key for kv in spans[2].attributes] == ["gen_ai.input.messages", REDACTION_ATTR]


def test_over_long_json_leaf_fails_the_same_way() -> None:
    """A parsed document (CLI jsonl) with a leaf over max_string_chars fails closed either way."""
    fast, reference = _pair("default", Limits(max_string_chars=50))
    for value in ({"a": "x" * 60}, ["ok", "y" * 60], {"k" * 60 + "-x": 1}):
        outcomes = []
        for redactor in (fast, reference):
            try:
                outcomes.append(redactor.redact_json(json.loads(json.dumps(value)), "p"))
            except RedactionError as exc:
                outcomes.append(("error", str(exc)))  # type: ignore[arg-type]
        assert outcomes[0] == outcomes[1] and outcomes[0][0] == "error", value


def test_candidate_values_locate_member_values_and_escaped_literals() -> None:
    """A match inside a member value names that literal and its key; a literal with escapes is
    returned without detectors (its decoded text needs a scan); a match in a key, in an array
    item or outside any literal leaves the document to the walk."""
    doc = json.dumps([{"role": "user", "content": "call 0301234567"}, {"content": "caf\u00e9", "n": 7}])
    data = doc.encode()
    at = data.index(b"0301234567") + 10
    found = candidate_values(data, [(at, 5)])
    assert found is not None
    assert [(data[a:b], key, dets) for a, b, key, dets in found] == [
        (b'"call 0301234567"', "content", {5}),
        (b'"caf\\u00e9"', "content", None),
    ]
    assert candidate_values(data, [(data.index(b"role") + 2, 1)]) is None  # in a key
    # a number the walk ignores (an int below 10^8, a float) holds nothing to find
    in_number = candidate_values(data, [(data.index(b"7}") + 1, 1)])
    assert in_number is not None and [data[a:b] for a, b, _, _ in in_number] == [b'"caf\\u00e9"']
    items = json.dumps({"items": ["call 0301234567"]}).encode()
    assert candidate_values(items, [(items.index(b"567") + 3, 5)]) is None  # in an array item
    quoted = json.dumps({"a": 'say "hi" 0301234567', "b": "x"}).encode()
    found = candidate_values(quoted, [(quoted.index(b"567") + 3, 5)])
    assert found is not None and [(quoted[a:b], k) for a, b, k, _ in found] == [
        (b'"say \\"hi\\" 0301234567"', "a")
    ]


def test_many_matches_in_a_span_still_find_the_pii_in_its_json() -> None:
    """Past the located-match cap the span's matches are not all known: its JSON documents are
    then scanned on their own, not judged by the partial list."""
    text = " ".join(f"on 2024-03-{d % 28 + 1:02d} build {1000000 + d}" for d in range(400))
    doc = json.dumps([{"role": "user", "content": text + " mail alice@example.com"}])
    td = TracesData()
    span = td.resource_spans.add().scope_spans.add().spans.add(name="chat")
    span.attributes.append(KeyValue(key="gen_ai.input.messages", value=AnyValue(string_value=doc)))
    for redactor in _pair("default"):
        out, report = redactor.redact_payload(td.SerializeToString(), "traces", "p")
        assert b"alice@example.com" not in out and report.counts == {("email", "mask"): 1}


@pytest.mark.parametrize(
    "doc",
    [
        '{"content": "mail alice@example.com", "content": "hi"}',
        '[{"role": "user", "content": "write to alice@example.com", "content": "hello"}]',
        '{"outer": {"x": "alice@example.com", "x": 1}, "other": "fine"}',
    ],
)
def test_a_repeated_json_key_cannot_hide_a_value(doc: str) -> None:
    """A JSON parser keeps the last of repeated keys, so a walk over the parsed document never
    sees the earlier values; the stored text must not keep them either."""
    td = TracesData()
    span = td.resource_spans.add().scope_spans.add().spans.add(name="chat")
    span.attributes.append(KeyValue(key="gen_ai.input.messages", value=AnyValue(string_value=doc)))
    for redactor in _pair("default"):
        out, _ = redactor.redact_payload(td.SerializeToString(), "traces", "p")
        assert b"alice@example.com" not in out


@pytest.mark.parametrize("escaped", [False, True])
def test_matches_on_numbers_and_the_keys_above_them(escaped: bool) -> None:
    """Request parameters and token counts fire digit and credential triggers outside any
    literal ("max_tokens": 1024); a number the walk never changes, or an identifier key above
    one, keeps the document on the located path. Anything the walk could change does not:
    a long integer, a non-identifier key, a key whose value is a string."""
    extra = ', "q": "say \\"hi\\""' if escaped else ""  # escaped quotes: the regex branch
    doc = (
        '{"temperature": 0.7, "max_tokens": 1024, "max tokens": 1024, "long": 123456789,'
        ' "api_token": "abc", "e": 1e5' + extra + "}"
    ).encode()
    assert (b'\\"' in doc) is escaped

    def after(needle: bytes, shift: int = 0) -> list[tuple[int, int]]:
        return [(doc.index(needle) + len(needle) + shift, 4)]

    for inert in (
        after(b"0.7"),
        after(b"1e5"),
        after(b'max_tokens":'),
        after(b'max_tokens"'),
        after(b"10", 0),
    ):
        assert candidate_values(doc, inert) is not None, inert
    for live in (after(b"123456789"), after(b'max tokens":'), after(b'api_token":')):
        assert candidate_values(doc, live) is None, live


def _walked_attribute_lists(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the attribute lists the walk looks at (resource, scope, span, event)."""
    from spanline.redactor.walker import MessageWalk

    calls: list[int] = []
    original = MessageWalk.attributes

    def counting(self: MessageWalk, attrs: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(len(attrs))
        original(self, attrs, *args, **kwargs)

    monkeypatch.setattr(MessageWalk, "attributes", counting)
    return calls


def test_a_resource_with_nothing_to_redact_is_not_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Attributes are located one by one: a model-name date before the next attribute's
    field tag (``J``) is no Spanish DNI, and JSON escapes whose decoded text holds nothing
    send no attribute to the walk."""
    walked = _walked_attribute_lists(monkeypatch)
    messages = json.dumps([{"role": "user", "content": 'Plan a trip.\nTwo days, "cheap".'}])
    td = TracesData()
    span = td.resource_spans.add().scope_spans.add().spans.add(name="chat claude-3-5-haiku-20241022")
    for key, value in (
        ("gen_ai.response.model", "claude-3-5-haiku-20241022"),
        ("gen_ai.request.model", "claude-3-5-haiku-20241022"),
        ("gen_ai.input.messages", messages),
    ):
        span.attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))
    payload = td.SerializeToString()
    assert b"20241022J" in payload  # what the whole-span pass used to see
    out, report = Redactor().redact_payload(payload, "traces", "p")
    assert out is payload and not report.counts
    assert walked == []

    # the same span with an address in the escaped document: only that attribute is walked
    span.attributes[2].value.string_value = messages.replace("cheap", "mail ana\\u0040example.com")
    out, report = Redactor().redact_payload(td.SerializeToString(), "traces", "p")
    assert report.counts == {("email", "mask"): 1}
    assert b"example.com" not in out
    assert walked == [3]


def test_a_log_record_is_located_like_a_span(monkeypatch: pytest.MonkeyPatch) -> None:
    """GenAI events as logs: the body and event name are one part, each attribute another."""
    from spanline.redactor.walker import MessageWalk

    bodies: list[object] = []
    original = MessageWalk.any_value

    def counting(self: MessageWalk, value: Any, *args: Any, **kwargs: Any) -> None:
        bodies.append(value.WhichOneof("value"))
        original(self, value, *args, **kwargs)

    monkeypatch.setattr(MessageWalk, "any_value", counting)
    walked = _walked_attribute_lists(monkeypatch)
    ld = LogsData()
    record = ld.resource_logs.add().scope_logs.add().log_records.add(event_name="gen_ai.choice")
    record.body.string_value = json.dumps({"message": {"content": 'Two days.\nStay "cheap".'}})
    record.attributes.append(
        KeyValue(key="gen_ai.response.model", value=AnyValue(string_value="claude-3-5-haiku-20241022"))
    )
    record.attributes.append(KeyValue(key="gen_ai.system", value=AnyValue(string_value="anthropic")))
    payload = ld.SerializeToString()
    out, report = Redactor().redact_payload(payload, "logs", "p")
    assert out is payload and not report.counts
    assert walked == [] and bodies == []

    record.body.string_value = record.body.string_value.replace("cheap", "ana\\u0040example.com")
    out, report = Redactor().redact_payload(ld.SerializeToString(), "logs", "p")
    assert report.counts == {("email", "mask"): 1} and b"example.com" not in out
    assert walked == [] and bodies == ["string_value"]  # the body only, no attribute


def test_a_big_trace_with_pii_in_every_span_stays_on_the_located_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The match budget of one pass grows with its parts: 120 spans with three addresses
    each (360 matches) are located, not walked whole."""
    from spanline.redactor import engine

    def refuse(*_args: Any) -> None:
        raise AssertionError("walked everything")

    monkeypatch.setattr(engine, "_walk_everything", refuse)
    td = TracesData()
    scope = td.resource_spans.add().scope_spans.add()
    for i in range(120):
        span = scope.spans.add(name="chat")
        doc = json.dumps([{"role": "user", "content": f"mail a{i}@example.com, b{i}@example.com"}])
        span.attributes.append(KeyValue(key="gen_ai.input.messages", value=AnyValue(string_value=doc)))
        span.attributes.append(KeyValue(key="note", value=AnyValue(string_value=f"c{i}@example.com")))
    out, report = Redactor().redact_payload(td.SerializeToString(), "traces", "p")
    assert report.counts == {("email", "mask"): 360}
    assert b"example.com" not in out


@pytest.mark.parametrize("escaped_quotes", [False, True])
def test_keyvalue_views_hold_every_decoded_leaf_and_key(escaped_quotes: bool) -> None:
    """What the walk decodes out of a KeyValue's string values is in its literal views:
    escaped leaves and keys, documents inside leaves, in arrays and key-value lists."""
    from spanline.redactor.prefilter import keyvalue_views

    for seed in range(200):
        rng = random.Random(f"kv-views-{seed}")
        leaf = _text(rng) + rng.choice(["\\u0040", "\n", "\U0001f600", "é", "\ud83d\ude00", ""])
        key = rng.choice(["pass\u0077ord", "note", "ключ"])
        inner = json.dumps({key: [leaf]}, ensure_ascii=rng.random() < 0.5)
        turns = [{"role": "user", "content": inner}, {"q": '"quoted"' if escaped_quotes else "plain"}]
        doc = json.dumps(turns, ensure_ascii=rng.random() < 0.5)
        try:
            doc.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: protobuf strings hold it only escaped
            doc = json.dumps(turns)
        value = rng.choice(
            [
                AnyValue(string_value=doc),
                AnyValue(
                    array_value=ArrayValue(values=[AnyValue(string_value="x"), AnyValue(string_value=doc)])
                ),
                AnyValue(
                    kvlist_value=KeyValueList(values=[KeyValue(key="k", value=AnyValue(string_value=doc))])
                ),
            ]
        )
        views = keyvalue_views(KeyValue(key="gen_ai.input.messages", value=value).SerializeToString(), 4)
        assert views is not None
        joined = b"\n".join(views)
        decoded_inner = json.loads(doc)[0]["content"]
        assert decoded_inner.encode("utf-8", "surrogatepass") in joined or "\\" not in doc, seed
        decoded_leaf = json.loads(decoded_inner)[key][0]
        raw_or_view = joined + doc.encode("utf-8", "surrogatepass")
        assert decoded_leaf.encode("utf-8", "surrogatepass") in raw_or_view, seed
        assert f'"{key}"'.encode() in raw_or_view, seed
    assert keyvalue_views(b"\xff\xff", 4) is None  # not a KeyValue: the caller decodes it whole
    plain = KeyValue(key="k", value=AnyValue(string_value="Tel:\\n0171 1234567")).SerializeToString()
    assert keyvalue_views(plain, 4) == []  # text, not a document: scanned as it is
