"""Silences: label matchers with a time range, muting matching alerts at send time.

Stored as JSON on the compacted topic ``spanline.alerter.silences`` keyed by silence id,
so every alerter instance sees the same set and a restart keeps them. Expiring a silence
writes it again with ``ends_at`` = now (the record stays for the audit trail).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

_MATCH = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)(=~|!=|=)(.*)$")


class SilenceError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Matcher:
        m = _MATCH.match(text.strip())
        if m is None:
            raise SilenceError(f"matcher {text!r} must look like name=value, name!=value or name=~regex")
        name, op, value = m.groups()
        if op == "=~":
            try:
                re.compile(value)
            except re.error as exc:
                raise SilenceError(f"matcher {name}=~ is not a valid regex: {exc}") from None
        return cls(name, op, value)

    def matches(self, labels: dict[str, str]) -> bool:
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        return re.fullmatch(self.value, got) is not None

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: list[Matcher]
    starts_at: float
    ends_at: float
    comment: str = ""
    created_by: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def mutes(self, labels: dict[str, str], now: float) -> bool:
        return self.active(now) and all(m.matches(labels) for m in self.matchers)

    def to_wire(self) -> bytes:
        body = asdict(self)
        body["matchers"] = [str(m) for m in self.matchers]
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_wire(cls, value: bytes) -> Silence:
        body = json.loads(value)
        return cls(
            id=str(body["id"]),
            matchers=[Matcher.parse(m) for m in body["matchers"]],
            starts_at=float(body["starts_at"]),
            ends_at=float(body["ends_at"]),
            comment=str(body.get("comment", "")),
            created_by=str(body.get("created_by", "")),
        )


def new_silence(
    matchers: list[str], starts_at: float, duration_s: float, comment: str, created_by: str
) -> Silence:
    if not matchers:
        raise SilenceError("a silence needs at least one --match")
    if duration_s <= 0:
        raise SilenceError("--for must be positive")
    parsed = [Matcher.parse(m) for m in matchers]
    return Silence(secrets.token_hex(8), parsed, starts_at, starts_at + duration_s, comment, created_by)


class SilenceSet:
    """The latest version of every silence, by id."""

    def __init__(self) -> None:
        self.by_id: dict[str, Silence] = {}

    def apply(self, value: bytes | None, key: bytes | None) -> None:
        if value is None or not value:
            if key:
                self.by_id.pop(key.decode("utf-8", "replace"), None)
            return
        try:
            silence = Silence.from_wire(value)
        except (ValueError, KeyError, TypeError):
            return
        self.by_id[silence.id] = silence

    def mutes(self, labels: dict[str, str], now: float) -> bool:
        return any(s.mutes(labels, now) for s in self.by_id.values())

    def active(self, now: float) -> list[Silence]:
        return sorted((s for s in self.by_id.values() if s.ends_at > now), key=lambda s: s.starts_at)
