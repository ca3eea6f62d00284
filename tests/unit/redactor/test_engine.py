"""The engine on OTLP messages: every place walked, JSON kept valid, reports, actions, pseudonyms."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

from spanline.redactor.engine import REDACTION_ATTR, Redactor
from spanline.redactor.policy import parse_policy
from spanline.v1.spanline_pb2 import AuditCount

from .conftest import array, kv, kvlist, sv

EMAIL = "alice.smith@example.com"
CARD = "4111 1111 1111 1111"
KEY = "sk-proj-Ab3dEfGh1jKlMnOpQrStUvWxYz0123456789AbCd"


def attrs(pb: object) -> dict[str, AnyValue]:
    return {a.key: a.value for a in pb.attributes}  # type: ignore[attr-defined]


def traces_with_pii() -> TracesData:
    td = TracesData()
    rs = td.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", "bot"), kv("host.ip", "10.1.2.3")])
    ss = rs.scope_spans.add()
    ss.scope.name = "instr"
    ss.scope.attributes.append(kv("owner", EMAIL))
    span = ss.spans.add(name=f"chat for {EMAIL}", trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    span.attributes.extend(
        [
            kv("gen_ai.request.model", "gpt-4o"),
            kv("gen_ai.usage.input_tokens", 42),
            kv("tags", array("plain", f"card {CARD}", array(KEY))),
            kv("user", kvlist(email=EMAIL, nested=kvlist(phone="+44 20 7946 0958"))),
            kv("blob", AnyValue(bytes_value=f"mail {EMAIL}".encode())),
        ]
    )
    span.status.message = f"failed for {EMAIL}"
    ev = span.events.add(name="gen_ai.content.prompt")
    ev.attributes.append(kv("gen_ai.prompt", f"my ssn is 123-45-6789 and key {KEY}"))
    link = span.links.add(trace_id=b"\x03" * 16, span_id=b"\x04" * 8)
    link.attributes.append(kv("peer", "192.168.0.7"))
    return td


def test_every_place_of_a_trace_is_redacted() -> None:
    td = traces_with_pii()
    report = Redactor().redact_traces(td, "p")
    raw = td.SerializeToString()
    for planted in (EMAIL, b"4111", KEY, b"7946", b"123-45-6789", b"10.1.2.3", b"192.168.0.7"):
        assert (planted if isinstance(planted, bytes) else planted.encode()) not in raw
    rs = td.resource_spans[0]
    assert attrs(rs.resource)["host.ip"].string_value == "<IP>"
    assert attrs(rs.resource)[REDACTION_ATTR].string_value == "ip=1"
    assert attrs(rs.scope_spans[0].scope)[REDACTION_ATTR].string_value == "email=1"
    span = rs.scope_spans[0].spans[0]
    assert span.name == "chat for <EMAIL>"
    assert span.status.message == "failed for <EMAIL>"
    a = attrs(span)
    assert a["gen_ai.usage.input_tokens"].int_value == 42
    assert a["tags"].array_value.values[1].string_value == "card <CARD>"
    assert a["tags"].array_value.values[2].array_value.values[0].string_value == "<OPENAI_KEY>"
    assert a["blob"].bytes_value == b"mail <EMAIL>"
    assert a[REDACTION_ATTR].string_value == "card=1,email=4,ip=1,openai_key=2,phone=1,ssn=1"
    assert span.events[0].attributes[0].value.string_value == "my ssn is <SSN> and key <OPENAI_KEY>"
    assert report.by_detector() == {"card": 1, "email": 5, "ip": 2, "openai_key": 2, "phone": 1, "ssn": 1}


def test_log_bodies_attributes_and_event_names() -> None:
    ld = LogsData()
    sl = ld.resource_logs.add().scope_logs.add()
    rec = sl.log_records.add(event_name="gen_ai.user.message")
    rec.body.CopyFrom(kvlist(content=f"hi I am {EMAIL}", role="user"))
    rec.attributes.append(kv("gen_ai.system", "openai"))
    rec2 = sl.log_records.add()
    rec2.body.CopyFrom(sv(json.dumps({"content": f"card {CARD}"})))
    clean = sl.log_records.add()
    clean.body.CopyFrom(sv("nothing here"))
    report = Redactor().redact_logs(ld, "p")
    assert rec.body.kvlist_value.values[0].value.string_value == "hi I am <EMAIL>"
    assert attrs(rec)[REDACTION_ATTR].string_value == "email=1"
    assert json.loads(rec2.body.string_value) == {"content": "card <CARD>"}
    assert REDACTION_ATTR not in attrs(clean)
    assert report.counts == {("email", "mask"): 1, ("card", "mask"): 1}


GENAI_MESSAGES = [
    {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
    {"role": "user", "parts": [{"type": "text", "content": f"I'm {EMAIL}\nmy card: {CARD} \u00e9t\u00e9"}]},
    {
        "role": "assistant",
        "parts": [
            {
                "type": "tool_call",
                "id": "call_1",
                "name": "lookup",
                "arguments": json.dumps({"email": EMAIL, "password": "hunter22"}),
            }
        ],
    },
]


@pytest.mark.parametrize(
    "key",
    [
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "input.value",
        "output.value",
        "llm.input_messages.0.message.content",
        "gen_ai.prompt.0.content",
        "gen_ai.completion.0.content",
    ],
)
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_json_in_strings_stays_valid_json(key: str, ensure_ascii: bool) -> None:
    td = TracesData()
    span = td.resource_spans.add().scope_spans.add().spans.add(name="chat")
    span.attributes.append(kv(key, json.dumps(GENAI_MESSAGES, ensure_ascii=ensure_ascii)))
    Redactor().redact_traces(td, "p")
    value = attrs(span)[key].string_value
    doc = json.loads(value)  # still JSON
    assert EMAIL not in value and "4111" not in value and "hunter22" not in value
    assert doc[0] == GENAI_MESSAGES[0]
    assert doc[1]["parts"][0]["content"] == "I'm <EMAIL>\nmy card: <CARD> \u00e9t\u00e9"
    args = json.loads(doc[2]["parts"][0]["arguments"])  # JSON inside JSON inside a string
    assert args == {"email": "<EMAIL>", "password": "<CREDENTIAL>"}
    assert ("\\u00e9" in value) is ensure_ascii


def test_unchanged_json_is_left_byte_identical() -> None:
    original = '{"a":  [1, 2, 3],   "b": "nothing"}'
    out, report = Redactor().redact_text(original, "p")
    assert out == original and not report


def test_json_numbers_that_are_cards_are_masked() -> None:
    out, _ = Redactor().redact_text('{"card": 4111111111111111, "count": 3, "ts": 1718000000}', "p")
    assert json.loads(out) == {"card": "<CARD>", "count": 3, "ts": 1718000000}


def test_sensitive_key_names_redact_whole_values() -> None:
    td = TracesData()
    span = td.resource_spans.add().scope_spans.add().spans.add(name="http")
    span.attributes.extend(
        [
            kv("http.request.header.authorization", "opaque-value"),
            kv("db.password", "x"),
            kv("gen_ai.usage.output_tokens", "12"),
            kv("config", json.dumps({"client_secret": "abc", "token_count": 3})),
        ]
    )
    Redactor().redact_traces(td, "p")
    a = attrs(span)
    assert a["http.request.header.authorization"].string_value == "<CREDENTIAL>"
    assert a["db.password"].string_value == "<CREDENTIAL>"
    assert a["gen_ai.usage.output_tokens"].string_value == "12"
    assert json.loads(a["config"].string_value) == {"client_secret": "<CREDENTIAL>", "token_count": 3}


def test_drop_action_removes_the_attribute_and_clears_bodies() -> None:
    r = Redactor(parse_policy({"detectors": {"email": "drop"}}))
    td = traces_with_pii()
    report = r.redact_traces(td, "p")
    span = td.resource_spans[0].scope_spans[0].spans[0]
    a = attrs(span)
    assert "user" not in a and "blob" not in a and "tags" in a
    assert span.name == "chat for <EMAIL>"  # names cannot be dropped: masked
    assert report.counts[("email", "drop")] == 5
    ld = LogsData()
    rec = ld.resource_logs.add().scope_logs.add().log_records.add()
    rec.body.CopyFrom(sv(f"from {EMAIL}"))
    r.redact_logs(ld, "p")
    assert not rec.HasField("body")


def test_pseudonyms_stable_in_project_distinct_across_projects() -> None:
    r = Redactor(
        parse_policy({"detectors": {"email": "pseudonymize", "phone": "pseudonymize"}}), pseudonym_secret="s"
    )
    a1, _ = r.redact_text(f"{EMAIL} and {EMAIL.upper()}", "acme")
    a2, _ = r.redact_text(f"again {EMAIL}", "acme")
    b1, _ = r.redact_text(EMAIL, "globex")
    tok = a1.split(" ")[0]
    assert tok.startswith("<EMAIL:") and len(tok) == 16
    assert a1 == f"{tok} and {tok}" and a2 == f"again {tok}"
    assert b1 != tok
    p1, _ = r.redact_text("+44 20 7946 0958", "acme")
    p2, _ = r.redact_text("+442079460958", "acme")
    assert p1 == p2
    other = Redactor(parse_policy({"detectors": {"email": "pseudonymize"}}), pseudonym_secret="t")
    assert other.redact_text(EMAIL, "acme")[0] != tok


def test_project_own_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import hmac

    monkeypatch.setenv("ACME_KEY", "acme-secret")
    r = Redactor(
        parse_policy(
            {
                "detectors": {"email": "pseudonymize"},
                "projects": {"acme": {"pseudonym_secret_env": "ACME_KEY"}},
            }
        ),
        pseudonym_secret="global",
    )
    expected = hmac.new(b"acme-secret", EMAIL.encode(), hashlib.sha256).hexdigest()[:8]
    assert r.redact_text(EMAIL, "acme")[0] == f"<EMAIL:{expected}>"


def test_allow_list_mode_drops_unlisted_keys_everywhere() -> None:
    policy = parse_policy({"attributes": {"mode": "allow", "keys": ["gen_ai.request.model", "tags"]}})
    td = traces_with_pii()
    report = Redactor(policy).redact_traces(td, "p")
    rs = td.resource_spans[0]
    assert set(attrs(rs.resource)) == {"service.name", REDACTION_ATTR}
    span = rs.scope_spans[0].spans[0]
    assert set(attrs(span)) == {"gen_ai.request.model", "tags", REDACTION_ATTR}
    assert "key_policy=" in attrs(span)[REDACTION_ATTR].string_value
    assert len(span.events[0].attributes) == 0 and len(span.links[0].attributes) == 0
    assert report.counts[("key_policy", "drop")] == 1 + 1 + 3 + 1 + 1  # resource, scope, span, event, link


def test_deny_list_mode() -> None:
    policy = parse_policy({"attributes": {"mode": "deny", "keys": ["user", "gen_ai.usage.*"]}})
    td = traces_with_pii()
    Redactor(policy).redact_traces(td, "p")
    a = attrs(td.resource_spans[0].scope_spans[0].spans[0])
    assert "user" not in a and "gen_ai.usage.input_tokens" not in a and "tags" in a


def test_client_supplied_redaction_attribute_is_replaced() -> None:
    td = TracesData()
    span = td.resource_spans.add().scope_spans.add().spans.add(name="x")
    span.attributes.append(kv(REDACTION_ATTR, "nothing=0"))
    Redactor().redact_traces(td, "p")
    assert REDACTION_ATTR not in attrs(span)


def test_report_to_audit_counts() -> None:
    td = traces_with_pii()
    report = Redactor().redact_traces(td, "acme")
    audit = report.to_audit_counts("acme", "traces", 1, 2)
    assert all(isinstance(a, AuditCount) for a in audit)
    by = {(a.detector, a.action): a.count for a in audit}
    assert by[("email", "mask")] == 5
    assert all(a.project_id == "acme" and a.signal == "traces" and a.window_end_unix_nano == 2 for a in audit)


def test_redact_payload_round_trip_and_undecodable() -> None:
    from spanline.redactor.errors import UndecodableError

    payload = traces_with_pii().SerializeToString()
    out, report = Redactor().redact_payload(payload, "traces", "p")
    assert EMAIL.encode() not in out and report.total > 0
    parsed = TracesData.FromString(out)
    assert parsed.resource_spans[0].scope_spans[0].spans[0].span_id == b"\x02" * 8
    with pytest.raises(UndecodableError):
        Redactor().redact_payload(b"\xff\xff\xff garbage", "traces", "p")
    with pytest.raises(UndecodableError):
        Redactor().redact_payload(payload, "metrics", "p")  # type: ignore[arg-type]


def _without_summaries(td: TracesData) -> bytes:
    copy = TracesData()
    copy.CopyFrom(td)
    for rs in copy.resource_spans:
        containers: list[Any] = [rs.resource, *(ss.scope for ss in rs.scope_spans)]
        containers += [s for ss in rs.scope_spans for s in ss.spans]
        for container in containers:
            keep = [a for a in container.attributes if a.key != REDACTION_ATTR]
            del container.attributes[:]
            container.attributes.extend(keep)
    return copy.SerializeToString()


def test_redaction_is_idempotent() -> None:
    td = traces_with_pii()
    r = Redactor()
    r.redact_traces(td, "p")
    once = _without_summaries(td)
    second = r.redact_traces(td, "p")
    assert not second and _without_summaries(td) == once


def test_span_kind_and_ids_untouched() -> None:
    td = traces_with_pii()
    span = td.resource_spans[0].scope_spans[0].spans[0]
    span.kind = Span.SPAN_KIND_CLIENT
    Redactor().redact_traces(td, "p")
    assert span.kind == Span.SPAN_KIND_CLIENT and span.trace_id == b"\x01" * 16


def test_projects_with_the_same_detectors_share_a_scanner() -> None:
    custom = [{"name": "x_id", "pattern": "X-[0-9]{4}"}]
    r = Redactor(parse_policy({"projects": {"acme": {"custom": custom}}}))
    assert r.policy_for("a").scanner is r.policy_for("b").scanner
    assert r.policy_for("acme").scanner is not r.policy_for("a").scanner
    assert r.redact_text("X-1234", "acme")[0] == "<X_ID>" and r.redact_text("X-1234", "a")[0] == "X-1234"


def test_warm_compiles_the_databases_before_the_first_message() -> None:
    """The redactor service warms its default policy at build time, so readiness means the
    Hyperscan databases exist for the thread that redacts (no first-message stall)."""
    from spanline.redactor.detectors.scanner import HYPERSCAN_AVAILABLE

    if not HYPERSCAN_AVAILABLE:
        pytest.skip("no hyperscan: nothing to compile")
    redactor = Redactor()
    compiled = redactor.policy_for("default")
    assert compiled.prefilter is not None
    assert getattr(compiled.prefilter._local, "locate", None) is None
    redactor.warm()
    for holder in (compiled.prefilter, compiled.scanner):
        assert getattr(holder._local, "state", None) is not None
        assert getattr(holder._local, "locate", None) is not None
