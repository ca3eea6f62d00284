"""Versioned ClickHouse migrations, shared by the embedded engine and a server.

The SQL files ship inside the package (``spanline/writer/migrations/NNNN_name.sql``) so a
``pip install`` carries them; ``infra/clickhouse/README.md`` points here. A file, once
released, never changes: its checksum is recorded and a mismatch stops the migration, since
a silently different schema on two deployments is worse than a loud start-up failure.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

log = logging.getLogger(__name__)

_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# the server normalises "INTERVAL 30 DAY" to "toIntervalDay(30)" in create_table_query
_TTL_INTERVAL_RE = re.compile(
    r"\bTTL\b.*?(?:INTERVAL\s+(\d+)\s+DAY|toIntervalDay\((\d+)\))", re.IGNORECASE | re.DOTALL
)
MIN_RETAIN_DAYS = 183
HOT_TABLES = ("spans", "logs", "scores")
RETAINED_TABLES = ("alerts", "audit")


class MigrationError(Exception):
    """The schema cannot be brought to the expected version; the message says why."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def statements(self, **params: str) -> list[str]:
        """Statements with placeholders filled; comments dropped, split on ';' at line ends."""
        lines = [ln for ln in self.text.splitlines() if not ln.lstrip().startswith("--")]
        body = "\n".join(lines)
        out = []
        for chunk in re.split(r";\s*(?:\n|$)", body):
            stmt = chunk.strip()
            if stmt:
                out.append(stmt.format(**params))
        return out


def load_migrations() -> list[Migration]:
    """All bundled migrations, ordered by version."""
    found: list[Migration] = []
    folder = resources.files("spanline.writer") / "migrations"
    for entry in folder.iterdir():
        match = _FILE_RE.match(entry.name)
        if not match:
            continue
        found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions: {versions}")
    return found


def _check_ident(database: str) -> None:
    if not _IDENT_RE.match(database):
        raise MigrationError(f"database name {database!r} must match {_IDENT_RE.pattern}")


def applied_versions(client: Any, database: str) -> dict[int, str]:
    """Applied version -> checksum, empty when the bookkeeping table does not exist yet."""
    _check_ident(database)
    exists = client.command(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = 'schema_migrations'",
        parameters={"db": database},
    )
    if not int(exists):
        return {}
    rows = client.query(f"SELECT version, checksum FROM {database}.schema_migrations FINAL").result_rows
    return {int(v): str(c) for v, c in rows}


def apply_migrations(
    client: Any, database: str, hot_days: int, *, retain_days: int | None = None
) -> list[int]:
    """Bring ``database`` to the newest schema; returns the versions applied by this call.

    Idempotent: applied versions are skipped, and every statement is ``IF NOT EXISTS`` so a
    run interrupted between a statement and its bookkeeping row can simply run again.
    ``retain_days`` (alerts, audit) defaults to the larger of ``hot_days`` and 183 days.
    """
    _check_ident(database)
    if hot_days < 1:
        raise MigrationError("hot_days must be >= 1")
    retain = retain_days if retain_days is not None else max(hot_days, MIN_RETAIN_DAYS)
    params = {"database": database, "hot_days": str(int(hot_days)), "retain_days": str(int(retain))}
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations ("
        "version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC')"
        ") ENGINE = ReplacingMergeTree(applied_at) ORDER BY version"
    )
    done = applied_versions(client, database)
    newly: list[int] = []
    for migration in load_migrations():
        if migration.version in done:
            if done[migration.version] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} was changed after it was "
                    f"applied to {database}; released migrations are immutable, add a new file instead"
                )
            continue
        for stmt in migration.statements(**params):
            client.command(stmt)
        client.command(
            f"INSERT INTO {database}.schema_migrations (version, name, checksum, applied_at) "
            "VALUES ({v:UInt32}, {n:String}, {c:String}, now64(3))",
            parameters={"v": migration.version, "n": migration.name, "c": migration.checksum},
        )
        log.info("applied migration", extra={"version": migration.version, "database": database})
        newly.append(migration.version)
    ensure_ttl(client, database, hot_days, retain)
    return newly


TIME_COLUMNS = {"spans": "start_time", "audit": "window_start"}  # the others: ``time``
_HOLD_CLAUSE_RE = re.compile(r"\bWHERE\s+project_id\s+NOT\s+IN\s+\(", re.IGNORECASE)
_LITERAL_RE = re.compile(r"\s*'((?:[^'\\]|\\.)*)'\s*([,)])", re.DOTALL)


def _create_query(client: Any, database: str, table: str) -> str:
    rows = client.query(
        "SELECT create_table_query FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": table},
    ).result_rows
    return str(rows[0][0]) if rows else ""


def current_ttl(client: Any, database: str, table: str) -> tuple[int | None, frozenset[str]]:
    """The table's TTL window in days and the projects its TTL leaves alone (legal holds)."""
    text = _create_query(client, database, table)
    match = _TTL_INTERVAL_RE.search(text)
    if not match:
        return None, frozenset()
    days = int(match.group(1) or match.group(2))
    clause = _HOLD_CLAUSE_RE.search(text, match.end())
    held: set[str] = set()
    pos = clause.end() if clause else -1
    while pos >= 0:
        lit = _LITERAL_RE.match(text, pos)
        if lit is None:
            break
        held.add(re.sub(r"\\(.)", r"\1", lit.group(1)))
        pos = lit.end() if lit.group(2) == "," else -1
    return days, frozenset(held)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ttl_clause(column: str, days: int, held: Iterable[str] = ()) -> str:
    """``TTL`` expression of a spanline table: rows older than ``days`` are deleted unless
    their project is on legal hold. Holds change by ``MODIFY TTL`` with this clause
    (metadata only), never by a mutation."""
    clause = f"toDateTime({column}) + INTERVAL {int(days)} DAY DELETE"
    projects = sorted(set(held))
    if projects:
        clause += f" WHERE project_id NOT IN ({', '.join(_quote(p) for p in projects)})"
    return clause


def ensure_ttl(
    client: Any, database: str, hot_days: int, retain_days: int, held: Iterable[str] | None = None
) -> list[str]:
    """Follow a changed retention setting or set of legal holds: tables whose TTL differs
    get ``MODIFY TTL``. ``held=None`` keeps each table's current hold exclusion (start-up
    and ``spanline migrate`` do not read the holds; the hot store's owner applies them).

    ``materialize_ttl_after_modify = 0`` keeps this cheap: existing parts adopt the new
    TTL as they merge, and every TTL merge evaluates the current expression, so a held
    project's expired rows survive it (tests/integration/coldtier/test_hold_hot_ttl.py).
    """
    wanted = {**dict.fromkeys(HOT_TABLES, hot_days), **dict.fromkeys(RETAINED_TABLES, retain_days)}
    return [t for t, days in wanted.items() if _set_ttl(client, database, t, days, held)]


def apply_holds(client: Any, database: str, held: Iterable[str]) -> list[str]:
    """Retention deletes of every table skip the ``held`` projects, and only those; each
    table keeps its window. Returns the tables changed."""
    _check_ident(database)
    held = frozenset(held)
    return [t for t in (*HOT_TABLES, *RETAINED_TABLES) if _set_ttl(client, database, t, None, held)]


def _set_ttl(client: Any, database: str, table: str, days: int | None, held: Iterable[str] | None) -> bool:
    """``MODIFY TTL`` when the window (None: keep) or the held projects (None: keep) differ."""
    current, current_held = current_ttl(client, database, table)
    if current is None:
        return False
    want_days = current if days is None else days
    want_held = current_held if held is None else frozenset(held)
    if current == want_days and current_held == want_held:
        return False
    column = TIME_COLUMNS.get(table, "time")
    client.command(
        f"ALTER TABLE {database}.{table} MODIFY TTL {ttl_clause(column, want_days, want_held)}",
        settings={"materialize_ttl_after_modify": 0},
    )
    log.info(
        "changed TTL",
        extra={"table": table, "from_days": current, "to_days": want_days, "held_projects": len(want_held)},
    )
    return True
