"""Policy files: validation messages, precedence, key filters, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from spanline.redactor.config import RedactorSettings
from spanline.redactor.detectors import BUILTIN_DETECTORS
from spanline.redactor.engine import Redactor
from spanline.redactor.errors import PolicyError
from spanline.redactor.policy import STRUCTURAL_KEYS, KeyFilter, load_policy, parse_policy, resolve


def test_zero_configuration_masks_every_builtin_detector() -> None:
    resolved = resolve(load_policy(None), "any")
    assert set(resolved.actions) == set(BUILTIN_DETECTORS)
    assert set(resolved.actions.values()) == {"mask"}
    assert resolved.key_filter.keep("anything.at.all")


def test_settings_defaults_are_safe() -> None:
    s = RedactorSettings()
    assert s.policy_file is None and s.pseudonym_secret is None and s.ner is False


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from spanline.settings import load_settings

    policy = tmp_path / "p.yaml"
    policy.write_text("detectors: {email: pseudonymize}\n")
    monkeypatch.setenv("SPANLINE_REDACTOR_POLICY_FILE", str(policy))
    monkeypatch.setenv("SPANLINE_REDACTOR_PSEUDONYM_SECRET", "topsecret")
    settings = load_settings()
    assert settings.redactor.policy_file == policy
    redactor = Redactor.from_settings(settings.redactor)
    out, _ = redactor.redact_text("a@b.example", "p")
    assert out.startswith("<EMAIL:") and len(out) == len("<EMAIL:12345678>")


def test_precedence_project_over_global_and_groups() -> None:
    policy = parse_policy(
        {
            "default_action": "mask",
            "detectors": {"secrets": "drop", "email": "pseudonymize", "ip": "off"},
            "projects": {
                "acme": {
                    "default_action": "pseudonymize",
                    "detectors": {"pii": "drop", "ip": {"enabled": True}},
                },
            },
        }
    )
    g = resolve(policy, "other", global_secret=b"k").actions
    assert g["email"] == "pseudonymize" and g["jwt"] == "drop" and g["card"] == "mask" and "ip" not in g
    a = resolve(policy, "acme", global_secret=b"k").actions
    # project group rule beats global detector rule; project default beats global group rule
    assert a["email"] == "drop" and a["card"] == "drop" and a["jwt"] == "pseudonymize"
    assert a["ip"] == "drop"  # re-enabled by the project, action from its pii group rule


def test_unknown_keys_and_values_are_named() -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy({"detectors": {"emial": "mask"}, "attributes": {"mode": "allowlist"}, "bogus": 1})
    msg = str(err.value)
    assert "detectors" in msg and "'emial'" in msg and "allowed:" in msg
    assert "attributes.mode" in msg and "'allow'" in msg and "'deny'" in msg
    assert "bogus: unknown key" in msg
    with pytest.raises(PolicyError, match=r"detectors\.email.*'mask', 'pseudonymize' or 'drop'"):
        parse_policy({"detectors": {"email": "hide"}})


def test_bad_custom_regex_is_reported_without_the_pattern_text() -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy({"custom": [{"name": "emp", "pattern": "EMP-(\\d+"}]})
    assert "custom.0.pattern" in str(err.value) and "invalid regular expression" in str(err.value)
    with pytest.raises(PolicyError, match="empty string"):
        parse_policy({"custom": [{"name": "emp", "pattern": "x*"}]})
    with pytest.raises(PolicyError, match="reserved"):
        parse_policy({"custom": [{"name": "email", "pattern": "x"}]})


def test_pseudonymize_without_secret_is_refused_at_start() -> None:
    policy = parse_policy({"projects": {"acme": {"detectors": {"email": "pseudonymize"}}}})
    with pytest.raises(PolicyError, match=r"projects\.acme\..*email.*needs a secret"):
        Redactor(policy)


def test_secret_from_env_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = parse_policy({"pseudonym_secret_env": "ACME_SECRET", "detectors": {"email": "pseudonymize"}})
    with pytest.raises(PolicyError, match="ACME_SECRET is not set"):
        Redactor(policy)
    monkeypatch.setenv("ACME_SECRET", "value-that-must-not-leak")
    r = Redactor(policy)
    assert "value-that-must-not-leak" not in repr(r.policy_for("x").__dict__)


def test_yaml_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("detectors: [unclosed\n")
    with pytest.raises(PolicyError, match="not valid YAML at line"):
        load_policy(bad)
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(PolicyError, match="mapping"):
        load_policy(scalar)


def test_key_filter_modes() -> None:
    deny = KeyFilter.build(
        parse_policy(
            {"attributes": {"mode": "deny", "keys": ["user.*", "http.request.header.cookie"]}}
        ).attributes
    )
    assert not deny.keep("user.email") and not deny.keep("http.request.header.cookie")
    assert deny.keep("gen_ai.input.messages") and deny.keep("service.name")
    allow = KeyFilter.build(
        parse_policy({"attributes": {"mode": "allow", "keys": ["gen_ai.usage.*"]}}).attributes
    )
    assert allow.keep("gen_ai.usage.input_tokens") and not allow.keep("gen_ai.input.messages")
    for structural in (
        "service.name",
        "telemetry.sdk.language",
        "spanline.redaction",
        "gen_ai.operation.name",
    ):
        assert allow.keep(structural), structural
    assert "service.name" in STRUCTURAL_KEYS


def test_file_example_loads(tmp_path: Path) -> None:
    f = tmp_path / "policy.yaml"
    f.write_text(
        """
version: 1
default_action: mask
attributes: {mode: deny, keys: ["enduser.*"]}
detectors:
  email: {action: pseudonymize}
  phone: mask
custom:
  - {name: employee_id, pattern: 'EMP-\\d{6}', action: mask}
dictionary:
  - {name: codename, terms: ["Project Falcon"], ignore_case: true}
projects:
  acme:
    attributes: {mode: allow, keys: ["gen_ai.*"]}
    detectors: {email: drop}
"""
    )
    r = Redactor(load_policy(f), pseudonym_secret="k")
    out, rep = r.redact_text("EMP-123456 works on project falcon", "x")
    assert out == "<EMPLOYEE_ID> works on <CODENAME>"
    assert rep.counts == {("employee_id", "mask"): 1, ("codename", "mask"): 1}


def test_yaml_off_shorthand_and_doc_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ip: off` is boolean false to YAML; the policy example of docs/redaction.md loads."""
    import re

    doc = (Path(__file__).resolve().parents[3] / "docs" / "redaction.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", doc, re.S)
    assert block is not None
    f = tmp_path / "p.yaml"
    f.write_text(block.group(1))
    monkeypatch.setenv("SPANLINE_PSEUDONYM_SECRET", "a")
    monkeypatch.setenv("ACME_PSEUDONYM_SECRET", "b")
    r = Redactor(load_policy(f))
    assert "ip" not in r.actions("other") and r.actions("acme")["ip"] == "pseudonymize"
    out, _ = r.redact_text("EMP-123456 ticket-pin: 9876 ACME-12345678", "acme")
    assert out == "<EMPLOYEE_ID> ticket-pin: <TICKET_SECRET> <ACME_ACCOUNT>"
