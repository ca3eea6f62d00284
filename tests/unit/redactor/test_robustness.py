"""Garbage in, bounded work out; fail closed; no raw value in logs or metric labels."""

from __future__ import annotations

import json
import logging
import tracemalloc

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from prometheus_client import REGISTRY

from spanline.redactor.detectors.numbers import NumberDetector
from spanline.redactor.engine import Redactor
from spanline.redactor.errors import RedactionError, UndecodableError
from spanline.redactor.policy import parse_policy

from .conftest import kv, kvlist, sv

EMAIL = "planted.person@example.com"


def span_with(*attributes: object) -> TracesData:
    td = TracesData()
    td.resource_spans.add().scope_spans.add().spans.add(name="s").attributes.extend(attributes)  # type: ignore[arg-type]
    return td


def value_of(td: TracesData, key: str) -> AnyValue:
    return next(a.value for a in td.resource_spans[0].scope_spans[0].spans[0].attributes if a.key == key)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("depth", [70, 10_000])
def test_deeply_nested_json_falls_back_to_text(depth: int) -> None:
    deep = "[" * depth + json.dumps(EMAIL) + "]" * depth
    td = span_with(kv("gen_ai.input.messages", deep))
    Redactor().redact_traces(td, "p")
    out = value_of(td, "gen_ai.input.messages").string_value
    assert EMAIL not in out and out == "[" * depth + '"<EMAIL>"' + "]" * depth


@pytest.mark.timeout(60)
def test_five_megabyte_value_bounded_memory() -> None:
    chunk = ("lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 20)[:990] + " 2024-03-15"
    big = (chunk * 5_000) + f" {EMAIL} " + (chunk * 200)
    td = span_with(kv("big", big), kv("big_json", json.dumps({"text": big})))
    tracemalloc.start()
    try:
        Redactor().redact_traces(td, "p")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert EMAIL not in value_of(td, "big").string_value
    assert json.loads(value_of(td, "big_json").string_value)["text"].count("<EMAIL>") == 1
    assert peak < 120 * 1024 * 1024, peak  # a few copies of 10 MB of input, not more


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "garbage",
    [
        "1 " * 500_000 + "x",
        "a." * 500_000 + "@",
        "@" * 1_000_000,
        ":" * 1_000_000,
        "1:" * 500_000,
        "-----BEGIN PRIVATE KEY-----" + "A" * 1_000_000,
        "password=" * 200_000,
        "sk-" * 300_000,
        "Bearer " * 200_000,
        "x://a:" + "b" * 1_000_000,
        "GB82 " * 300_000,
        "(" * 1_000_000,
        "{" * 1_000_000,
        "\u00e9" * 1_000_000,
    ],
    ids=lambda g: repr(g[:12]),
)
def test_adversarial_strings_take_bounded_time(garbage: str) -> None:
    out, _ = Redactor().redact_text(garbage, "p")
    assert isinstance(out, str)


@pytest.mark.timeout(60)
def test_hundred_thousand_element_array() -> None:
    values = [sv(f"item {i}") for i in range(100_000)]
    values[77_777] = sv(f"mail {EMAIL}")
    td = span_with(kv("list", AnyValue(array_value=ArrayValue(values=values))))
    report = Redactor().redact_traces(td, "p")
    arr = value_of(td, "list").array_value.values
    assert len(arr) == 100_000 and arr[77_777].string_value == "mail <EMAIL>"
    assert report.counts == {("email", "mask"): 1}


@pytest.mark.timeout(30)
def test_hundred_thousand_element_json_array() -> None:
    doc = json.dumps(["x"] * 100_000 + [EMAIL])
    out, _ = Redactor().redact_text(doc, "p")
    assert json.loads(out)[-1] == "<EMAIL>"


def test_deeply_nested_anyvalue() -> None:
    value = sv(EMAIL)
    for _ in range(30):  # 3 protobuf levels each; upb refuses more than 100
        value = kvlist(inner=value)
    td = span_with(kv("nest", value))
    payload = td.SerializeToString()
    out, report = Redactor().redact_payload(payload, "traces", "p")
    assert EMAIL.encode() not in out and report.total == 1


def test_invalid_utf8_bytes_values_are_redacted_and_preserved() -> None:
    raw = b"\xff\xfe head " + EMAIL.encode() + b" tail \x80\xc3"
    td = span_with(kv("b", AnyValue(bytes_value=raw)))
    Redactor().redact_traces(td, "p")
    assert value_of(td, "b").bytes_value == b"\xff\xfe head <EMAIL> tail \x80\xc3"


def test_invalid_utf8_in_string_field_is_undecodable() -> None:
    payload = (
        span_with(kv("k", "AAAAAAAA"))
        .SerializeToString()
        .replace(b"AAAAAAAA", b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8")
    )
    with pytest.raises(UndecodableError):
        Redactor().redact_payload(payload, "traces", "p")


@pytest.mark.parametrize("payload", [b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x05abc", b"\xff" * 100])
def test_malformed_protobuf_is_undecodable(payload: bytes) -> None:
    for signal in ("traces", "logs"):
        with pytest.raises(UndecodableError):
            Redactor().redact_payload(payload, signal, "p")  # type: ignore[arg-type]


def test_oversized_string_fails_closed() -> None:
    from spanline.redactor.walker import Limits

    r = Redactor(limits=Limits(max_string_chars=1000))
    with pytest.raises(RedactionError, match="max_string_chars"):
        r.redact_traces(span_with(kv("k", "x" * 1001)), "p")


def test_detector_exception_propagates_as_redaction_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: object, text: str, out: list[object]) -> None:
        raise ValueError(f"cannot handle {text}")

    monkeypatch.setattr(NumberDetector, "find", boom)
    td = span_with(kv("msg", f"{EMAIL} call +1 415 555 2671"))
    with pytest.raises(RedactionError) as err:
        Redactor().redact_traces(td, "p")
    assert EMAIL not in str(err.value) and "2671" not in str(err.value)
    assert err.value.__cause__ is None  # the original exception text may quote the payload
    with pytest.raises(RedactionError):
        Redactor().redact_payload(span_with(kv("msg", "+1 415 555 2671")).SerializeToString(), "traces", "p")
    ld = LogsData()
    ld.resource_logs.add().scope_logs.add().log_records.add().body.CopyFrom(sv("call 415-555-2671"))
    with pytest.raises(RedactionError):
        Redactor().redact_logs(ld, "p")


def test_no_raw_value_in_logs_or_metric_labels(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-proj-Pl4nt3dPl4nt3dPl4nt3dPl4nt3dPl4nt3d"
    planted = [EMAIL, secret, "4111111111111111", "hunter2pass"]
    text = f"{EMAIL} {secret} card 4111111111111111 password=hunter2pass"
    caplog.set_level(logging.DEBUG)
    r = Redactor(parse_policy({"detectors": {"email": "pseudonymize"}}), pseudonym_secret="k")
    r.redact_traces(span_with(kv("msg", text), kv("j", json.dumps({"t": text}))), "p")
    r.redact_text(text, "p")
    # the failure path too
    monkeypatch.setattr(NumberDetector, "find", lambda self, t, out: 1 / 0)
    with pytest.raises(RedactionError) as err:
        r.redact_traces(span_with(kv("msg", text)), "p")
    logging.getLogger("test").exception("redaction failed: %s", err.value)
    for value in planted:
        assert value not in caplog.text
        assert value not in str(err.value)
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            for label in sample.labels.values():
                assert all(v not in label for v in planted)
