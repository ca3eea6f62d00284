"""Physical erasure of a data subject from both tiers, verified on the stored files.

Order (a replay must never bring the subject back, and a crash must leave a request that
can be re-run):
1. ledger: HMACs of every stored form of the subject go into the erasure ledger, which the
   writer and the coldtier consult before every insert;
2. cold: the affected traces are found, their spans and scores deleted (copy-on-write),
   every older snapshot expired and every file not reached by a live manifest entry
   removed; column statistics are off for subject columns, so no manifest keeps a bound;
3. hot: ids go into a Memory table (so the mutation file holds a subquery, never the id),
   ``ALTER TABLE ... DELETE`` with ``mutations_sync=2``, then the outdated parts are
   waited out;
4. verify: every stored Parquet file of the cold table is decoded and every file of
   both tiers is scanned for the raw bytes of each form.
The subject never appears in a log line: records carry its HMAC.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from spanline.coldtier.commit import retry_on_conflict
from spanline.coldtier.maintenance import StepReport, expire, expressions, remove_orphans
from spanline.coldtier.offsets import summary_properties
from spanline.coldtier.storage import list_files, open_fs

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from spanline.coldtier.governance import GovernanceStore
    from spanline.settings import Settings

log = logging.getLogger(__name__)

_SUBJECT_COLUMNS = ("user_id", "conversation_id")


@dataclass
class ErasureRequest:
    request_id: str
    kind: str  # user_id | conversation_id
    forms: list[str]  # the raw subject and its pseudonyms: never logged, never in the status record
    subject_hmac: str
    requester: str
    projects: list[str] | None  # None: every project except ``excluded_projects``
    created_at: str
    excluded_projects: list[str] = field(default_factory=list)
    trace_ids: list[str] = field(default_factory=list)

    def job(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def covers(self, project: str) -> bool:
        """Whether this request erases ``project``'s rows (its scope minus held projects)."""
        inside = self.projects is None or project in self.projects
        return inside and project not in self.excluded_projects

    def public(self) -> dict[str, Any]:
        d = self.job()
        d.pop("forms")
        d["trace_count"] = len(d.pop("trace_ids"))
        return d


def new_request_id() -> str:
    return "er-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:8]


# -- cold ------------------------------------------------------------------------------------
def _scoped(req: ErasureRequest, flt: Any) -> Any:
    ex = expressions()
    if req.projects:
        flt = ex.And(flt, ex.In("project_id", set(req.projects)))
    if req.excluded_projects:
        flt = ex.And(flt, ex.NotIn("project_id", set(req.excluded_projects)))
    return flt


def _subject_filter(req: ErasureRequest) -> Any:
    ex = expressions()
    flt = ex.In(req.kind, set(req.forms))
    if req.trace_ids:
        flt = ex.Or(flt, ex.In("trace_id", set(req.trace_ids)))
    return _scoped(req, flt)


def cold_trace_ids(tables: dict[str, Table], req: ErasureRequest) -> set[str]:
    flt = _scoped(req, expressions().In(req.kind, set(req.forms)))
    spans = tables["spans"]
    spans.refresh()
    data = spans.scan(row_filter=flt, selected_fields=("trace_id",)).to_arrow()
    return {t for t in data.column("trace_id").to_pylist() if t}


def erase_cold(settings: Settings, tables: dict[str, Table], req: ErasureRequest) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": {}, "files_rewritten": 0, "orphans_removed": 0, "snapshots_expired": 0}
    retries = settings.coldtier.commit_retries
    for name, table in tables.items():
        table.refresh()
        flt = _subject_filter(req) if name == "spans" else _trace_filter(req)
        if flt is None:
            out["rows"][name] = 0
            continue
        rows = table.scan(row_filter=flt, selected_fields=("project_id",)).to_arrow().num_rows
        out["rows"][name] = rows
        if rows:

            def attempt(table: Table = table, flt: Any = flt) -> None:
                table.delete(flt, snapshot_properties=summary_properties(table))

            retry_on_conflict(table, name, retries, attempt)
            snap = table.current_snapshot()
            if snap is not None and snap.summary is not None:
                out["files_rewritten"] += int(snap.summary.additional_properties.get("deleted-data-files", 0))
        report = StepReport("erase", name)
        expire(table, datetime.now(UTC) + timedelta(seconds=1), report)
        # in-process between batches: no append of ours is in flight, so no age margin
        remove_orphans(settings, table, 0.0, report)
        out["orphans_removed"] += report.items.get("orphans_removed", 0)
        out["snapshots_expired"] += report.items.get("snapshots_expired", 0)
    return out


def _trace_filter(req: ErasureRequest) -> Any:
    if not req.trace_ids:
        return None
    return _scoped(req, expressions().In("trace_id", set(req.trace_ids)))


def verify_cold(settings: Settings, tables: dict[str, Table], req: ErasureRequest) -> dict[str, Any]:
    """Decode the subject columns of every Parquet file on storage and scan every file's
    raw bytes: a file that still holds any form of the subject is named (by path).

    Data files are partitioned by project, so a file of a project the request does not
    cover (a held project, or one outside ``--project``) keeps the subject by design: it is
    counted in ``files_out_of_scope``, and only its rows of covered projects (none) are checked."""
    from spanline.coldtier.config import s3_properties

    needles = [f.encode("utf-8") for f in req.forms]
    forms = set(req.forms)
    scanned = out_of_scope = 0
    dirty: list[str] = []
    for table in tables.values():
        fs, root = open_fs(table.location(), s3_properties(settings))
        for f in list_files(fs, root):
            scanned += 1
            with fs.open_input_file(f.path) as handle:
                raw = handle.read()
            if not f.path.endswith(".parquet"):
                if any(n in raw for n in needles):
                    dirty.append(f.path)
                continue
            with fs.open_input_file(f.path) as handle:
                pf = pq.ParquetFile(handle)
                names = pf.schema_arrow.names
                cols = [c for c in _SUBJECT_COLUMNS if c in names]
                data = pf.read(columns=[*cols, "project_id"] if "project_id" in names else cols)
            if "project_id" in data.column_names:
                projects = data.column("project_id").to_pylist()
                inside = [req.covers(p or "") for p in projects]
                if not all(inside):
                    out_of_scope += 1
                    data = data.filter(pa.array(inside, type=pa.bool_()))
                    if any(forms & set(data.column(c).to_pylist()) for c in cols):
                        dirty.append(f.path)
                    continue
            if any(n in raw for n in needles) or any(forms & set(data.column(c).to_pylist()) for c in cols):
                dirty.append(f.path)
    return {"files_scanned": scanned, "files_with_subject": dirty, "files_out_of_scope": out_of_scope}


# -- hot -------------------------------------------------------------------------------------
def hot_trace_ids(client: Any, database: str, req: ErasureRequest) -> set[str]:
    mem = _memory_table(client, database, "v", req.forms)
    try:
        where = f"{req.kind} IN (SELECT v FROM {mem})" + _project_clause(req)
        rows = client.query(f"SELECT DISTINCT trace_id FROM {database}.spans WHERE {where}").result_rows
        return {r[0] for r in rows if r[0]}
    finally:
        client.command(f"DROP TABLE IF EXISTS {mem}")


def _quote(values: list[str]) -> str:
    return ", ".join("'" + p.replace("\\", "\\\\").replace("'", "\\'") + "'" for p in values)


def _project_clause(req: ErasureRequest) -> str:
    clause = ""
    if req.projects:
        clause += f" AND project_id IN ({_quote(req.projects)})"
    if req.excluded_projects:
        clause += f" AND project_id NOT IN ({_quote(req.excluded_projects)})"
    return clause


def _memory_table(client: Any, database: str, column: str, values: list[str]) -> str:
    name = f"{database}.erase_{uuid.uuid4().hex[:12]}"
    client.command(f"CREATE TABLE {name} ({column} String) ENGINE = Memory")
    if values:
        client.insert(name, [[v] for v in values], column_names=[column])
    return name


def erase_hot(
    client: Any, database: str, req: ErasureRequest, parts_timeout_s: float = 120.0
) -> dict[str, Any]:
    subjects = _memory_table(client, database, "v", req.forms)
    traces = _memory_table(client, database, "t", req.trace_ids)
    proj = _project_clause(req)
    where = {
        "spans": f"({req.kind} IN (SELECT v FROM {subjects}) OR trace_id IN (SELECT t FROM {traces})){proj}",
        "logs": f"trace_id IN (SELECT t FROM {traces}){proj}",
        "scores": f"trace_id IN (SELECT t FROM {traces}){proj}",
    }
    rows: dict[str, int] = {}
    try:
        for table, cond in where.items():
            rows[table] = int(
                client.query(f"SELECT count() FROM {database}.{table} WHERE {cond}").result_rows[0][0]
            )
            if rows[table]:
                client.command(
                    f"ALTER TABLE {database}.{table} DELETE WHERE {cond}", settings={"mutations_sync": 2}
                )
    finally:
        client.command(f"DROP TABLE IF EXISTS {subjects}")
        client.command(f"DROP TABLE IF EXISTS {traces}")
    outdated = _drop_outdated_parts(client, database, list(where), parts_timeout_s)
    return {"rows": rows, "outdated_parts_left": outdated}


def _drop_outdated_parts(client: Any, database: str, tables: list[str], timeout_s: float) -> int:
    """Outdated parts still hold the deleted rows until the cleaner removes them (8 minutes
    by default): shorten their lifetime for the wait, then restore the table setting."""
    for t in tables:
        client.command(
            f"ALTER TABLE {database}.{t} MODIFY SETTING old_parts_lifetime = 1, "
            "cleanup_delay_period = 1, cleanup_delay_period_random_add = 0"
        )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            left = int(
                client.query(
                    "SELECT count() FROM system.parts WHERE database = {db:String} AND active = 0 "
                    "AND table IN {tables:Array(String)}",
                    parameters={"db": database, "tables": tables},
                ).result_rows[0][0]
            )
            if left == 0 or time.monotonic() > deadline:
                return left
            time.sleep(0.5)
    finally:
        for t in tables:
            client.command(
                f"ALTER TABLE {database}.{t} RESET SETTING old_parts_lifetime, cleanup_delay_period, "
                "cleanup_delay_period_random_add"
            )


def verify_hot(client: Any, database: str, req: ErasureRequest, data_dir: Path | None) -> dict[str, Any]:
    """No covered row keeps the subject, and no stored file holds its bytes, except the
    active parts that hold the subject's rows in projects the request does not cover (held
    ones, or outside ``--project``): those are counted in ``parts_out_of_scope``."""
    mem = _memory_table(client, database, "v", req.forms)
    subject = f"(user_id IN (SELECT v FROM {mem}) OR conversation_id IN (SELECT v FROM {mem}))"
    try:
        left = int(
            client.query(
                f"SELECT count() FROM {database}.spans WHERE {subject}{_project_clause(req)}"
            ).result_rows[0][0]
        )
        kept_parts = _parts_kept_out_of_scope(client, database, req, subject)
    finally:
        client.command(f"DROP TABLE IF EXISTS {mem}")
    dirty: list[str] = []
    scanned = 0
    if data_dir is not None and data_dir.exists():
        needles = [f.encode("utf-8") for f in req.forms]
        for path in data_dir.rglob("*"):
            if not path.is_file():
                continue
            scanned += 1
            if any(str(path).startswith(part) for part in kept_parts):
                continue
            try:
                raw = path.read_bytes()
            except OSError:
                continue
            if any(n in raw for n in needles):
                dirty.append(str(path))
    return {
        "rows_left": left,
        "files_scanned": scanned,
        "files_with_subject": dirty,
        "parts_out_of_scope": len(kept_parts),
    }


def _parts_kept_out_of_scope(client: Any, database: str, req: ErasureRequest, subject: str) -> list[str]:
    """Directories (with a trailing slash) of active parts holding the subject's rows, or
    rows of its traces, in projects the request leaves alone."""
    if req.projects is None and not req.excluded_projects:
        return []
    outside = _outside_clause(req)
    traces = f"trace_id IN (SELECT trace_id FROM {database}.spans WHERE {subject} AND {outside})"
    names: list[tuple[str, str]] = []
    for table, cond in (("spans", subject), ("logs", traces), ("scores", traces)):
        rows = client.query(
            f"SELECT DISTINCT _part FROM {database}.{table} WHERE {cond} AND {outside}"
        ).result_rows
        names += [(table, r[0]) for r in rows]
    if not names:
        return []
    rows = client.query(
        "SELECT path FROM system.parts WHERE active AND database = {db:String} "
        "AND (table, name) IN {parts:Array(Tuple(String, String))}",
        parameters={"db": database, "parts": names},
    ).result_rows
    return [r[0].rstrip("/") + "/" for r in rows]


def _outside_clause(req: ErasureRequest) -> str:
    """Rows of projects the request does not cover."""
    parts = []
    if req.projects:
        parts.append(f"project_id NOT IN ({_quote(req.projects)})")
    if req.excluded_projects:
        parts.append(f"project_id IN ({_quote(req.excluded_projects)})")
    return "(" + " OR ".join(parts) + ")" if parts else "0"


# -- ledger ----------------------------------------------------------------------------------
def record_in_ledger(governance: GovernanceStore, req: ErasureRequest) -> None:
    """The subject's digests (and its traces'), scoped like the erasure: a replay drops
    records only of the projects this request erases, never of a held project it skipped."""
    scope = {"projects": req.projects, "excluded_projects": req.excluded_projects}
    governance.add_to_ledger(
        req.kind, [governance.digest(req.kind, f) for f in req.forms], req.request_id, **scope
    )
    if req.trace_ids:
        governance.add_to_ledger(
            "trace_id", [governance.digest("trace_id", t) for t in req.trace_ids], req.request_id, **scope
        )
