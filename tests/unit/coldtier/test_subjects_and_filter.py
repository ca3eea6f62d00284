"""Stored forms of a subject (raw + the redactor's pseudonyms) and the replay filter."""

from __future__ import annotations

import pyarrow as pa

from spanline.coldtier.ledger_filter import drop_erased
from spanline.coldtier.subjects import stored_forms
from spanline.redactor.policy import derive_project_key
from spanline.redactor.pseudonym import pseudonym, pseudonymize_identifier
from spanline.settings import load_settings


def test_forms_include_the_redactors_pseudonym_per_project() -> None:
    s = load_settings(None, redactor={"pseudonym_secret": "s3cret"})
    forms = stored_forms(s, "user_id", "alice@example.org", ["p1", "p2"])
    assert forms[0] == "alice@example.org"
    for project in ("p1", "p2"):
        key = derive_project_key(b"s3cret", project)
        assert pseudonym(key, "email", "alice@example.org") in forms


def test_forms_include_the_identifier_pseudonym_the_redactor_stores() -> None:
    """user.id / gen_ai.conversation.id attributes are stored as <ID:...> under the project's
    key: the redactor's public function says which string that is."""
    s = load_settings(None, redactor={"pseudonym_secret": "s3cret"})
    for kind, value in (("user_id", "u-4711"), ("conversation_id", "conv-9")):
        forms = stored_forms(s, kind, value, ["p1", "p2"])
        for project in ("p1", "p2"):
            assert pseudonymize_identifier(project, value, "s3cret") in forms


def test_forms_without_a_secret_are_the_raw_value() -> None:
    assert stored_forms(load_settings(None), "user_id", "bob", ["p1"]) == ["bob"]


def test_drop_erased_matches_digests_of_any_subject_column() -> None:
    def digest(kind: str, value: str) -> str:
        return f"{kind}:{value}"

    table = pa.table({"user_id": ["a", "b", None, "c"], "trace_id": ["t1", "t2", "t3", "t9"]})
    ledger = {
        "user_id": frozenset({"user_id:a"}),
        "conversation_id": frozenset(),
        "trace_id": frozenset({"trace_id:t9"}),
    }
    kept, dropped = drop_erased(table, ledger, digest)
    assert dropped == 2
    assert kept.column("user_id").to_pylist() == ["b", None]
