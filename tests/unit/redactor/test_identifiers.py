"""Identifier attributes become keyed pseudonyms (joinable, erasable), never class masks."""

from __future__ import annotations

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from spanline.redactor.engine import Redactor
from spanline.redactor.pseudonym import IDENTIFIER_PSEUDONYM, pseudonymize_identifier


def span_with(**attrs: str | int) -> tuple[TracesData, object]:
    td = TracesData()
    span = td.resource_spans.add().scope_spans.add().spans.add(name="chat")
    for k, v in attrs.items():
        value = AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=v)
        span.attributes.append(KeyValue(key=k.replace("__", "."), value=value))
    return td, span


def attrs_of(span: object) -> dict[str, str]:
    return {a.key: a.value.string_value for a in span.attributes}  # type: ignore[attr-defined]


def test_user_and_session_ids_get_stable_joinable_pseudonyms() -> None:
    r = Redactor(pseudonym_secret="k1")
    outs = []
    for _ in range(2):
        td, span = span_with(
            user__id="alice@example.com", session__id="sess-42", gen_ai__request__model="gpt-4o"
        )
        report = r.redact_traces(td, "acme")
        outs.append(attrs_of(span))
        assert report.by_detector() == {"identifier": 2}
    a = outs[0]
    assert a == outs[1]  # stable: per-user queries join across spans
    assert IDENTIFIER_PSEUDONYM.fullmatch(a["user.id"]) and a["user.id"] != "<EMAIL>"
    assert len(a["user.id"]) - len("<ID:>") >= 16
    assert a["gen_ai.request.model"] == "gpt-4o"
    assert a["spanline.redaction"] == "identifier=2"


def test_erasure_function_matches_what_the_redactor_wrote() -> None:
    r = Redactor(pseudonym_secret="k1")
    td, span = span_with(enduser__id="bob-77", gen_ai__conversation__id=1234567)
    r.redact_traces(td, "acme")
    a = attrs_of(span)
    assert a["enduser.id"] == pseudonymize_identifier("acme", "bob-77", "k1")
    assert a["gen_ai.conversation.id"] == pseudonymize_identifier("acme", "1234567", b"k1")
    # other project, other key: other pseudonym
    assert pseudonymize_identifier("other", "bob-77", "k1") != a["enduser.id"]
    assert pseudonymize_identifier("acme", "bob-77", "k2") != a["enduser.id"]


def test_distinct_users_do_not_collide() -> None:
    tokens = {pseudonymize_identifier("p", f"user-{i}", "k") for i in range(100_000)}
    assert len(tokens) == 100_000


def test_idempotent_and_same_without_fast_paths() -> None:
    fast, slow = Redactor(pseudonym_secret="k"), Redactor(pseudonym_secret="k", fast_paths=False)
    td1, s1 = span_with(user__id="carol")
    td2, s2 = span_with(user__id="carol")
    fast.redact_traces(td1, "p")
    slow.redact_traces(td2, "p")
    assert attrs_of(s1) == attrs_of(s2)
    again = attrs_of(s1)["user.id"]
    td3, s3 = span_with(user__id=again)
    assert fast.redact_traces(td3, "p").total == 0 and attrs_of(s3)["user.id"] == again


def test_log_record_identifiers() -> None:
    logs = LogsData()
    rec = logs.resource_logs.add().scope_logs.add().log_records.add()
    rec.attributes.append(KeyValue(key="user.id", value=AnyValue(string_value="dave@example.com")))
    Redactor(pseudonym_secret="k").redact_logs(logs, "p")
    assert rec.attributes[0].value.string_value == pseudonymize_identifier("p", "dave@example.com", "k")


def test_without_a_secret_identifiers_are_only_scanned() -> None:
    td, span = span_with(user__id="erin@example.com", session__id="s-1")
    Redactor().redact_traces(td, "p")
    assert attrs_of(span)["user.id"] == "<EMAIL>" and attrs_of(span)["session.id"] == "s-1"
