"""Legal holds, the erasure ledger and audit records: one small store both tiers can read.

It lives beside the warehouse (a directory locally, an S3 prefix in production), not in
either tier's engine, so the writer, the coldtier and the CLI read the same state without
opening each other's stores. One JSON object per record (S3 has no append):

- ``holds/<project>.json``: the active hold of a project (reason, expiry, who, when).
- ``ledger/<kind>/<digest>``: an erased subject's HMAC (never the subject itself);
  ``<digest>.<request>`` when that erasure covered only some projects (its scope inside).
- ``audit/<time>-<id>.json``: every hold change and erasure, append-only.
- ``erasure/<request>.json``: an erasure request and what each tier did.
- ``ledger.key``: the HMAC key when none is configured (created on first use).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pyarrow import fs as pafs

if TYPE_CHECKING:
    from spanline.settings import Settings

SUBJECT_KINDS = ("user_id", "conversation_id", "trace_id")


class HoldActive(Exception):
    """A legal hold forbids this deletion; the message names the project and the reason."""


@dataclass(frozen=True, slots=True)
class Hold:
    project: str
    reason: str
    expires_at: str | None
    set_by: str
    set_at: str

    def active(self, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return True
        return datetime.fromisoformat(self.expires_at) > (now or datetime.now(UTC))


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class GovernanceStore:
    def __init__(self, url: str, s3: dict[str, str] | None = None, key: bytes | None = None) -> None:
        from spanline.coldtier.storage import open_fs

        self.fs, self.root = open_fs(url, s3)
        if isinstance(self.fs, pafs.LocalFileSystem):
            os.makedirs(self.root, exist_ok=True)
        self._key = key
        self._scopes: dict[str, LedgerScope] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> GovernanceStore:
        from spanline.coldtier.config import resolve_governance_url, s3_properties

        key = settings.coldtier.erasure_key
        return cls(
            resolve_governance_url(settings),
            s3_properties(settings),
            key.get_secret_value().encode("utf-8") if key is not None else None,
        )

    # -- files -----------------------------------------------------------------------------
    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def read_json(self, rel: str) -> Any:
        try:
            with self.fs.open_input_stream(self._path(rel)) as f:
                return json.loads(f.read())
        except FileNotFoundError:
            return None

    def write_json(self, rel: str, obj: Any) -> None:
        path = self._path(rel)
        if isinstance(self.fs, pafs.LocalFileSystem):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(obj, f, sort_keys=True)
            os.replace(tmp, path)  # readers never see half a record
            return
        with self.fs.open_output_stream(path) as f:
            f.write(json.dumps(obj, sort_keys=True).encode("utf-8"))

    def delete(self, rel: str) -> None:
        try:
            self.fs.delete_file(self._path(rel))
        except FileNotFoundError:
            pass

    def list_names(self, rel_dir: str) -> list[str]:
        """Names (not paths) of the files directly under ``rel_dir``."""
        selector = pafs.FileSelector(self._path(rel_dir), allow_not_found=True)
        out = []
        for info in self.fs.get_file_info(selector):
            if info.type == pafs.FileType.File and not info.base_name.endswith(".tmp"):
                out.append(info.base_name)
        return sorted(out)

    # -- subject digests -------------------------------------------------------------------
    def key(self) -> bytes:
        if self._key is None:
            stored = self.read_json("ledger.key")
            if stored is None:
                stored = {"key": secrets.token_hex(32), "created_at": utc_now_iso()}
                self.write_json("ledger.key", stored)
                stored = self.read_json("ledger.key")  # a concurrent creator may have won
            self._key = bytes.fromhex(stored["key"])
        return self._key

    def digest(self, kind: str, value: str) -> str:
        return hmac.new(self.key(), f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()

    # -- audit -----------------------------------------------------------------------------
    def audit(self, event: str, record: dict[str, Any]) -> str:
        ident = uuid.uuid4().hex
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.write_json(f"audit/{stamp}-{ident}.json", {"event": event, "at": utc_now_iso(), **record})
        return ident

    def audit_records(self) -> list[dict[str, Any]]:
        return [r for name in self.list_names("audit") if (r := self.read_json(f"audit/{name}")) is not None]

    # -- legal holds -----------------------------------------------------------------------
    def set_hold(self, project: str, reason: str, expires_at: str | None, by: str) -> Hold:
        if not reason.strip():
            raise ValueError("a legal hold needs a reason")
        if expires_at is not None:
            parsed = datetime.fromisoformat(expires_at)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            expires_at = parsed.astimezone(UTC).isoformat(timespec="seconds")
        hold = Hold(project, reason, expires_at, by, utc_now_iso())
        self.write_json(f"holds/{_safe(project)}.json", hold_dict(hold))
        self.audit("hold_set", hold_dict(hold))
        return hold

    def release_hold(self, project: str, by: str, reason: str) -> bool:
        existing = self.read_json(f"holds/{_safe(project)}.json")
        if existing is None:
            return False
        self.delete(f"holds/{_safe(project)}.json")
        self.audit(
            "hold_released", {"project": project, "released_by": by, "reason": reason, "hold": existing}
        )
        return True

    def holds(self) -> list[Hold]:
        out = []
        for name in self.list_names("holds"):
            data = self.read_json(f"holds/{name}")
            if data is not None:
                out.append(Hold(**data))
        return out

    def held_projects(self) -> set[str]:
        now = datetime.now(UTC)
        return {h.project for h in self.holds() if h.active(now)}

    def check_no_hold(self, projects: set[str] | None, action: str) -> None:
        """Raise :class:`HoldActive` if a hold covers ``projects`` (None = any project)."""
        held = self.held_projects()
        hit = held if projects is None else held & projects
        if hit:
            names = ", ".join(sorted(hit))
            raise HoldActive(f"{action} refused: legal hold on project(s) {names} (`spanline hold list`)")

    # -- erasure ledger --------------------------------------------------------------------
    def add_to_ledger(
        self,
        kind: str,
        digests: list[str],
        request_id: str,
        *,
        projects: list[str] | None = None,
        excluded_projects: list[str] | None = None,
    ) -> None:
        """Record erased subjects. An erasure of every project is one file per digest
        (``ledger/<kind>/<digest>``); an erasure scoped to some projects, or one that left
        held projects out, names its scope (``<digest>.<request>``), so a replay drops the
        subject's records only where the erasure removed them."""
        if kind not in SUBJECT_KINDS:
            raise ValueError(f"unknown subject kind {kind}")
        record: dict[str, Any] = {"request_id": request_id, "at": utc_now_iso()}
        scoped = projects is not None or bool(excluded_projects)
        if scoped:
            record["projects"] = sorted(projects) if projects is not None else None
            record["excluded_projects"] = sorted(excluded_projects or ())
        for d in digests:
            self.write_json(f"ledger/{kind}/{d}.{request_id}" if scoped else f"ledger/{kind}/{d}", record)

    def ledger(self) -> dict[str, LedgerDigests]:
        out = {}
        for kind in SUBJECT_KINDS:
            everywhere: set[str] = set()
            scoped: dict[str, list[str]] = {}
            for name in self.list_names(f"ledger/{kind}"):
                digest, _, request = name.partition(".")
                if request:
                    scoped.setdefault(digest, []).append(name)
                else:
                    everywhere.add(digest)
            scopes: dict[str, tuple[LedgerScope, ...]] = {}
            for digest, names in scoped.items():
                if digest not in everywhere:  # erased everywhere once: no scope narrows it
                    scopes[digest] = tuple(self._scope(f"ledger/{kind}/{n}") for n in names)
            out[kind] = LedgerDigests(everywhere | set(scopes), scopes)
        return out

    def _scope(self, rel: str) -> LedgerScope:
        """A scoped entry never changes once written, so it is read once per process."""
        cached = self._scopes.get(rel)
        if cached is None:
            data = self.read_json(rel) or {}
            projects = data.get("projects")
            cached = LedgerScope(
                frozenset(projects) if projects is not None else None,
                frozenset(data.get("excluded_projects", ())),
            )
            self._scopes[rel] = cached
        return cached


@dataclass(frozen=True, slots=True)
class LedgerScope:
    """The projects an erasure covered: ``projects`` (None = all) minus ``excluded``
    (projects on legal hold when it ran)."""

    projects: frozenset[str] | None
    excluded: frozenset[str]

    def covers(self, project: str) -> bool:
        return (self.projects is None or project in self.projects) and project not in self.excluded


class LedgerDigests(frozenset[str]):
    """The ledger's digests of one subject kind. ``scopes`` holds, for digests erased only in
    some projects, where they were erased; any other digest was erased in every project."""

    scopes: Mapping[str, tuple[LedgerScope, ...]]

    def __new__(
        cls, digests: Iterable[str] = (), scopes: Mapping[str, tuple[LedgerScope, ...]] | None = None
    ) -> LedgerDigests:
        self = super().__new__(cls, digests)
        self.scopes = dict(scopes or {})
        return self


def hold_dict(h: Hold) -> dict[str, Any]:
    return {
        "project": h.project,
        "reason": h.reason,
        "expires_at": h.expires_at,
        "set_by": h.set_by,
        "set_at": h.set_at,
    }


def _safe(project: str) -> str:
    """A project name as a file name: hex when it holds anything but [A-Za-z0-9._-]."""
    if project and all(c.isalnum() or c in "._-" for c in project) and not project.startswith("."):
        return project
    return "x-" + project.encode("utf-8").hex()


class LedgerCache:
    """The ledger as sets, re-read at most every ``refresh_s``: cheap enough per batch."""

    def __init__(self, store: GovernanceStore, refresh_s: float) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._at = 0.0
        self._sets: dict[str, LedgerDigests] = {k: LedgerDigests() for k in SUBJECT_KINDS}

    def sets(self) -> dict[str, LedgerDigests]:
        now = time.monotonic()
        if now - self._at >= self.refresh_s:
            self._sets = self.store.ledger()
            self._at = now
        return self._sets

    def refresh_now(self) -> None:
        self._at = 0.0
