"""`spanline redact`: formats, detection, errors and exit codes (in process, real argparse)."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import pytest

from spanline.redactor.commands import add_commands

OTLP = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bot"}}]},
            "scopeSpans": [
                {
                    "spans": [
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "name": "chat",
                            "kind": 3,
                            "startTimeUnixNano": "1544712660000000000",
                            "attributes": [
                                {
                                    "key": "gen_ai.input.messages",
                                    "value": {
                                        "stringValue": json.dumps(
                                            [{"role": "user", "content": "I am a@b.example"}]
                                        )
                                    },
                                }
                            ],
                        }
                    ]
                }
            ],
        }
    ]
}


def run(monkeypatch: pytest.MonkeyPatch, stdin: str, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="spanline")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["redact", *argv])
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    code = args.func(args)
    return code, out.getvalue(), err.getvalue()


def test_text_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run(monkeypatch, "mail a@b.example\nnothing\n\ncard 4111 1111 1111 1111\n")
    assert code == 0
    assert out == "mail <EMAIL>\nnothing\n\ncard <CARD>\n"
    assert "(text, project default)" in err and "card/mask=1" in err and "email/mask=1" in err


def test_json_lines_stay_json(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run(
        monkeypatch, '{"msg": "call +44 20 7946 0958"}\n["a@b.example", 1]\n', "--format", "jsonl"
    )
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [{"msg": "call <PHONE>"}, ["<EMAIL>", 1]]


def test_otlp_json_auto_detected_ids_stay_hex(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run(monkeypatch, json.dumps(OTLP), "--project", "acme")
    assert code == 0, err
    doc = json.loads(out)
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == "5b8efff798038103d269b633813fc60c" and span["spanId"] == "eee19b7ec3c1b174"
    attrs = {a["key"]: a["value"]["stringValue"] for a in span["attributes"]}
    assert json.loads(attrs["gen_ai.input.messages"]) == [{"role": "user", "content": "I am <EMAIL>"}]
    assert attrs["spanline.redaction"] == "email=1"
    assert "(otlp-json, project acme)" in err


def test_otlp_logs_and_json_lines_of_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "ssn 123-45-6789"}}]}]}]}
    code, out, _ = run(
        monkeypatch, json.dumps(logs) + "\n" + json.dumps(logs) + "\n", "--format", "otlp-json"
    )
    assert code == 0
    docs = [json.loads(line) for line in out.splitlines()]
    assert len(docs) == 2
    assert docs[0]["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["body"]["stringValue"] == "ssn <SSN>"


def test_policy_and_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("projects:\n  acme:\n    detectors: {email: drop}\n")
    code, out, err = run(monkeypatch, "a@b.example\n", "--policy", str(policy), "--project", "acme", "-q")
    assert code == 0 and out == "<EMAIL>\n" and err == ""


@pytest.mark.parametrize(
    "stdin,argv,code,message",
    [
        ("not json\n", ["--format", "jsonl"], 1, "line 1: not valid JSON"),
        (
            '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
            [],
            1,
            "traceId is not hex",
        ),
        ('{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": "WRONG"}]}]}]}', [], 1, "invalid OTLP JSON"),
        ('{"a": 1}', ["--format", "otlp-json"], 1, "not an OTLP JSON document"),
        ("x\n", ["--policy", "/nonexistent/policy.yaml"], 2, "cannot read redaction policy"),
    ],
)
def test_errors_are_messages_not_tracebacks(
    monkeypatch: pytest.MonkeyPatch, stdin: str, argv: list[str], code: int, message: str
) -> None:
    got, _out, err = run(monkeypatch, stdin, *argv)
    assert got == code and message in err and "Traceback" not in err


def test_invalid_policy_exit_2_without_secret_values(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("detectors: {email: pseudonymize}\npseudonym_secret_env: MISSING_VAR_FOR_TEST\n")
    code, _, err = run(monkeypatch, "x\n", "--policy", str(policy))
    assert code == 2 and "MISSING_VAR_FOR_TEST is not set" in err


def test_per_detector_hits_of_the_new_detectors(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
    text = f"Regards,\nPeter Schmidt\nTel 030 12345678, PESEL 44051401359, key {key}\n"
    code, out, err = run(monkeypatch, text, "--format", "text")
    assert code == 0
    assert "Schmidt" not in out and "44051401359" not in out and "4eC39" not in out
    for hit in ("name/mask=1", "phone/mask=1", "pl_pesel/mask=1", "stripe_key/mask=1"):
        assert hit in err, err
