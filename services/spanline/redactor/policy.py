"""The redaction policy: what to detect, what to do with it, which attribute keys to keep.

A policy file holds a global section and per-project overrides. Everything has a safe
default: with no file at all, every built-in detector is on and masks (``<EMAIL>``), and
no attribute key is dropped. Secrets for pseudonyms never sit in the file: it names an
environment variable or a file (a mounted Kubernetes secret) that holds them.

Precedence for a detector's action in project P (first defined wins): P's rule for the
detector, P's rule for its group (``pii``, ``secrets``, ``ner``), P's ``default_action``,
then the same three in the global section, then ``mask``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from spanline.core.yaml_file import YamlFileError, read_yaml_mapping
from spanline.redactor.detectors import (
    BUILTIN_DETECTORS,
    DETECTOR_GROUPS,
    KEY_POLICY,
    NER_DETECTORS,
)
from spanline.redactor.detectors.phones import DEFAULT_REGIONS as DEFAULT_PHONE_REGIONS
from spanline.redactor.errors import PolicyError

Action = Literal["mask", "pseudonymize", "drop"]
ACTIONS: tuple[str, ...] = ("mask", "pseudonymize", "drop")
_NAME = r"^[a-z][a-z0-9_]{0,39}$"
_KNOWN_DETECTORS = frozenset(BUILTIN_DETECTORS) | frozenset(NER_DETECTORS)

# Kept in allow-list mode whatever the list says: without them a span cannot be routed,
# attributed to a service or told apart as a GenAI operation downstream. Their values are
# still scanned by the detectors like any other.
STRUCTURAL_KEYS: tuple[str, ...] = (
    "service.name",
    "service.namespace",
    "service.version",
    "service.instance.id",
    "telemetry.sdk.*",
    "spanline.*",
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.system",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectorRule(_Model):
    action: Action | None = None
    enabled: bool = True


class CustomPattern(_Model):
    name: str = Field(pattern=_NAME)
    pattern: str = Field(min_length=1, max_length=4096)
    action: Action | None = None
    ignore_case: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc.msg} at position {exc.pos}") from None
        if compiled.match(""):
            raise ValueError("pattern matches the empty string")
        return value


class DictionaryRule(_Model):
    name: str = Field(pattern=_NAME)
    terms: list[str] = Field(min_length=1, max_length=100_000)
    action: Action | None = None
    ignore_case: bool = True

    @field_validator("terms")
    @classmethod
    def _non_empty_terms(cls, value: list[str]) -> list[str]:
        if any(not t.strip() for t in value):
            raise ValueError("terms must not be empty strings")
        return value


class AttributeRules(_Model):
    mode: Literal["allow", "deny"] = "deny"
    keys: list[str] = Field(default_factory=list, description="attribute keys or globs (`*`)")


def _detector_rule(value: object) -> object:
    """Shorthands: ``email: drop`` -> {action: drop}; ``ip: off`` (YAML reads it as false) -> disabled."""
    if value is False or value == "off":
        return {"enabled": False}
    if value is True or value == "on":
        return {"enabled": True}
    if isinstance(value, str):
        return {"action": value}
    return value


class PolicySection(_Model):
    """What the global section and each project may say."""

    default_action: Action | None = None
    attributes: AttributeRules | None = None
    detectors: dict[str, DetectorRule] = Field(default_factory=dict)
    custom: list[CustomPattern] = Field(default_factory=list)
    dictionary: list[DictionaryRule] = Field(default_factory=list)
    pseudonym_secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    pseudonym_secret_file: Path | None = None
    phone_regions: list[str] | None = Field(
        default=None,
        description="ISO 3166 regions tried for phone numbers written without a country code "
        "(default US, GB, DE, FR), in order",
    )

    @field_validator("phone_regions")
    @classmethod
    def _known_regions(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        from phonenumbers import SUPPORTED_REGIONS

        out = [r.upper() for r in value]
        unknown = [r for r in out if r not in SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown phone region(s) {', '.join(unknown)} (ISO 3166 alpha-2 codes)")
        if not out:
            raise ValueError("phone_regions must list at least one region")
        return out

    @field_validator("detectors", mode="before")
    @classmethod
    def _shorthands(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: _detector_rule(v) for k, v in value.items()}
        return value

    @field_validator("detectors")
    @classmethod
    def _known_detectors(cls, value: dict[str, DetectorRule]) -> dict[str, DetectorRule]:
        for name in value:
            if name not in _KNOWN_DETECTORS and name not in DETECTOR_GROUPS:
                allowed = ", ".join(sorted(DETECTOR_GROUPS) + sorted(_KNOWN_DETECTORS))
                raise ValueError(f"unknown detector {name!r}; allowed: {allowed}")
        return value

    @model_validator(mode="after")
    def _unique_custom_names(self) -> PolicySection:
        seen: set[str] = set()
        for name in [c.name for c in self.custom] + [d.name for d in self.dictionary]:
            if name in _KNOWN_DETECTORS or name in DETECTOR_GROUPS or name == KEY_POLICY:
                raise ValueError(f"custom detector name {name!r} is reserved for a built-in")
            if name in seen:
                raise ValueError(f"custom detector name {name!r} is defined twice")
            seen.add(name)
        return self


class PolicyFile(PolicySection):
    version: Literal[1] = 1
    projects: dict[str, PolicySection] = Field(default_factory=dict)


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"  {key}: {msg}")
    return f"invalid redaction policy {source}:\n" + "\n".join(lines)


def parse_policy(data: Mapping[str, object] | None, source: str = "<inline>") -> PolicyFile:
    """Validate policy data (already parsed YAML); errors name keys and allowed values, never values."""
    try:
        return PolicyFile.model_validate(dict(data or {}))
    except ValidationError as exc:
        raise PolicyError(_format_errors(exc, source)) from None


def load_policy(path: str | Path | None) -> PolicyFile:
    """Read and validate a YAML policy file; ``None`` gives the zero-configuration default."""
    if path is None:
        return PolicyFile()
    try:
        data = read_yaml_mapping(path, "redaction policy")
    except YamlFileError as exc:
        raise PolicyError(str(exc)) from None
    return parse_policy(data, str(path))


def _literals(globs: list[str]) -> tuple[str, ...] | None:
    """The longest literal run of each glob (a key matching the glob contains it)."""
    out: list[str] = []
    for glob in globs:
        if "?" in glob or "[" in glob:
            return None
        longest = max(glob.split("*"), key=len)
        if not longest:
            return None
        out.append(longest)
    return tuple(out)


@dataclass(frozen=True)
class KeyFilter:
    """Allow/deny decision on attribute keys, memoised: keys repeat on every span."""

    mode: Literal["allow", "deny"]
    pattern: re.Pattern[str] | None
    # For the engine's prefilter: every key this filter removes contains one of these
    # strings; None when that cannot be said (allow mode, a glob without a literal part).
    removed_key_literals: tuple[str, ...] | None = ()
    _cache: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, rules: AttributeRules | None) -> KeyFilter:
        rules = rules or AttributeRules()
        globs = list(rules.keys)
        if rules.mode == "allow":
            globs += STRUCTURAL_KEYS
        if not globs:
            return cls(rules.mode, None)
        body = "|".join(fnmatch.translate(g) for g in globs)
        return cls(rules.mode, re.compile(body), _literals(globs) if rules.mode == "deny" else None)

    def keep(self, key: str) -> bool:
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        listed = self.pattern is not None and self.pattern.match(key) is not None
        keep = listed if self.mode == "allow" else not listed
        if len(self._cache) < 100_000:
            self._cache[key] = keep
        return keep


@dataclass(frozen=True)
class ResolvedPolicy:
    """The effective policy for one project: built once, used for every message of it."""

    project: str
    actions: Mapping[str, str]  # enabled detector -> action
    key_filter: KeyFilter
    custom: tuple[CustomPattern, ...]
    dictionary: tuple[DictionaryRule, ...]
    hmac_key: bytes | None = field(repr=False)
    phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS


def _group_of(detector: str) -> str | None:
    for group, members in DETECTOR_GROUPS.items():
        if detector in members:
            return group
    return None


def _lookup(section: PolicySection, detector: str) -> tuple[str | None, bool | None]:
    """(action, enabled) a section states for a detector, None where it says nothing.

    The detector's own rule wins over its group's, field by field: ``ip: {enabled: true}``
    with ``pii: drop`` means "ip on, action drop".
    """
    action: str | None = None
    enabled: bool | None = None
    for name in (detector, _group_of(detector)):
        if name is None or name not in section.detectors:
            continue
        rule = section.detectors[name]
        stated, on = rule.action, rule.enabled
        action = action or stated
        enabled = on if enabled is None else enabled
    return action, enabled


def _own_action(section: PolicySection, detector: str) -> str | None:
    """The action written on a custom pattern or dictionary entry itself."""
    for entry in section.custom:
        if entry.name == detector:
            return entry.action
    for term in section.dictionary:
        if term.name == detector:
            return term.action
    return None


def _read_secret(section: PolicySection, where: str) -> bytes | None:
    if section.pseudonym_secret_env:
        value = os.environ.get(section.pseudonym_secret_env)
        if not value:
            raise PolicyError(
                f"{where}pseudonym_secret_env: environment variable {section.pseudonym_secret_env} "
                "is not set or empty"
            )
        return value.encode("utf-8")
    if section.pseudonym_secret_file:
        try:
            value = section.pseudonym_secret_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise PolicyError(f"{where}pseudonym_secret_file: cannot read it: {exc.strerror}") from None
        if not value:
            raise PolicyError(f"{where}pseudonym_secret_file: the file is empty")
        return value.encode("utf-8")
    return None


def derive_project_key(global_secret: bytes, project: str) -> bytes:
    """Per-project HMAC key from the global secret: pseudonyms differ across projects."""
    return hmac.new(
        global_secret, b"spanline-pseudonym-key\x00" + project.encode("utf-8"), hashlib.sha256
    ).digest()


def resolve(
    policy: PolicyFile,
    project: str,
    *,
    global_secret: bytes | None = None,
    ner: bool = False,
) -> ResolvedPolicy:
    """Merge global and project sections into the effective policy of ``project``.

    ``global_secret`` is the settings-level secret (``redactor.pseudonym_secret``); a secret
    named in the policy's global section takes precedence over it.
    """
    proj = policy.projects.get(project)
    where = f"projects.{project}." if proj is not None else ""
    custom = {c.name: c for c in policy.custom}
    dictionary = {d.name: d for d in policy.dictionary}
    if proj is not None:
        custom.update({c.name: c for c in proj.custom})
        dictionary.update({d.name: d for d in proj.dictionary})

    candidates = [*BUILTIN_DETECTORS, *(NER_DETECTORS if ner else ()), *custom, *dictionary]
    sections = [s for s in (proj, policy) if s is not None]
    actions: dict[str, str] = {}
    for detector in candidates:
        action: str | None = None
        enabled: bool | None = None
        for section in sections:
            stated, on = _lookup(section, detector)
            if stated is None:
                stated = _own_action(section, detector)
            if enabled is None:
                enabled = on
            if action is None:
                action = stated or section.default_action
        if enabled is not False:
            actions[detector] = action or "mask"

    key: bytes | None = None
    own = _read_secret(proj, where) if proj is not None else None
    if own is not None:
        key = own
    else:
        base = _read_secret(policy, "") or global_secret
        if base is not None:
            key = derive_project_key(base, project)
    if key is None:
        pseudonymized = sorted(d for d, a in actions.items() if a == "pseudonymize")
        if pseudonymized:
            raise PolicyError(
                f"{where}detectors {', '.join(pseudonymized)} use action 'pseudonymize', which needs a "
                "secret: set redactor.pseudonym_secret (env SPANLINE_REDACTOR_PSEUDONYM_SECRET) or "
                "pseudonym_secret_env / pseudonym_secret_file in the policy"
            )
    attributes = proj.attributes if proj is not None and proj.attributes is not None else policy.attributes
    regions = proj.phone_regions if proj is not None and proj.phone_regions else policy.phone_regions
    return ResolvedPolicy(
        project=project,
        actions=actions,
        key_filter=KeyFilter.build(attributes),
        custom=tuple(custom[n] for n in custom if n in actions),
        dictionary=tuple(dictionary[n] for n in dictionary if n in actions),
        hmac_key=key,
        phone_regions=tuple(regions) if regions else DEFAULT_PHONE_REGIONS,
    )
