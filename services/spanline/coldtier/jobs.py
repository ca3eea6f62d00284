"""Work on a tier done by the process that owns it: erasures, legal holds, archive reads.

The embedded hot store admits one process, and orphan removal must not race the
coldtier's own appends, so each tier is erased by the process that owns it: the CLI
drops a job into the governance store (``erasure/jobs/<tier>/<id>.json``), the owner
(writer or coldtier) runs it between batches and writes ``erasure/results/<id>.<tier>.json``.
When no owner runs, the CLI does the tier's work itself. A job file holds the subject's
stored forms (the tiers must match them) and is deleted as soon as it ran; results and the
status record hold only HMACs and counts.

The hot store's owner also takes other jobs the same way (``jobs/hot/<id>.json`` ->
``jobs/results/<id>.json``): ``holds`` brings the TTL's legal-hold exclusion up to date
(the owner also does this on every poll, so an expired hold stops protecting rows);
``archive_read`` writes the hot rows an archive export needs as a Parquet file
(coldtier/archive_sources.py).
"""

from __future__ import annotations

import logging
import time
import uuid
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spanline.coldtier.erasure import (
    ErasureRequest,
    cold_trace_ids,
    erase_cold,
    erase_hot,
    hot_trace_ids,
    record_in_ledger,
    verify_cold,
    verify_hot,
)
from spanline.coldtier.governance import GovernanceStore, HoldActive, utc_now_iso

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from spanline.settings import Settings

log = logging.getLogger(__name__)

HEARTBEAT = "owners/coldtier.json"


def _take_jobs(governance: GovernanceStore, tier: str) -> list[ErasureRequest]:
    out = []
    for name in governance.list_names(f"erasure/jobs/{tier}"):
        data = governance.read_json(f"erasure/jobs/{tier}/{name}")
        if data is not None:
            out.append(ErasureRequest(**data))
    return out


def _finish_job(governance: GovernanceStore, tier: str, req: ErasureRequest, result: dict[str, Any]) -> None:
    governance.write_json(f"erasure/results/{req.request_id}.{tier}.json", result)
    governance.delete(f"erasure/jobs/{tier}/{req.request_id}.json")


def cold_part(
    settings: Settings, tables: dict[str, Table], governance: GovernanceStore, req: ErasureRequest
) -> dict[str, Any]:
    req.trace_ids = sorted(set(req.trace_ids) | cold_trace_ids(tables, req))
    record_in_ledger(governance, req)  # the traces too, before their rows go
    done = erase_cold(settings, tables, req)
    check = verify_cold(settings, tables, req)
    return {**done, "verify": check, "trace_ids": req.trace_ids, "verified_at": utc_now_iso()}


def hot_part(
    client: Any, database: str, data_dir: Path | None, governance: GovernanceStore, req: ErasureRequest
) -> dict[str, Any]:
    if not int(client.command(f"EXISTS DATABASE {database}")):
        return {
            "rows": {},
            "outdated_parts_left": 0,
            "verify": {"rows_left": 0, "files_scanned": 0, "files_with_subject": []},
            "trace_ids": req.trace_ids,
            "verified_at": utc_now_iso(),
            "note": "no hot store",
        }
    req.trace_ids = sorted(set(req.trace_ids) | hot_trace_ids(client, database, req))
    record_in_ledger(governance, req)
    done = erase_hot(client, database, req)
    check = verify_hot(client, database, req, data_dir)
    return {**done, "verify": check, "trace_ids": req.trace_ids, "verified_at": utc_now_iso()}


def run_pending_cold_erasures(
    settings: Settings, tables: dict[str, Table], governance: GovernanceStore
) -> None:
    """Called by the coldtier between batches; also its liveness mark for the CLI."""
    governance.write_json(HEARTBEAT, {"at": time.time()})
    for req in _take_jobs(governance, "cold"):
        log.info("erasure job", extra={"request_id": req.request_id, "tier": "cold"})
        try:
            result = cold_part(settings, tables, governance, req)
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        _finish_job(governance, "cold", req, result)


def run_pending_hot_erasures(
    client: Any, database: str, data_dir: Path | None, governance: GovernanceStore
) -> None:
    """Called by the writer that owns the embedded store, between batches."""
    for req in _take_jobs(governance, "hot"):
        log.info("erasure job", extra={"request_id": req.request_id, "tier": "hot"})
        try:
            result = hot_part(client, database, data_dir, governance, req)
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        _finish_job(governance, "hot", req, result)


def coldtier_running(settings: Settings, governance: GovernanceStore) -> bool:
    beat = governance.read_json(HEARTBEAT)
    return beat is not None and time.time() - float(beat["at"]) < 3 * settings.coldtier.erasure_poll_s + 5


def _await_result(
    governance: GovernanceStore, tier: str, req: ErasureRequest, timeout_s: float
) -> dict[str, Any]:
    return _submit(
        governance,
        f"erasure/jobs/{tier}/{req.request_id}.json",
        f"erasure/results/{req.request_id}.{tier}.json",
        req.job(),
        f"the running {tier} owner",
        timeout_s,
    )


def _submit(
    governance: GovernanceStore, job: str, result: str, payload: dict[str, Any], owner: str, timeout_s: float
) -> dict[str, Any]:
    """Drop ``payload`` at ``job`` and wait for the owner's answer at ``result``."""
    governance.write_json(job, payload)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = governance.read_json(result)
        if answer is not None:
            governance.delete(result)
            return dict(answer)
        time.sleep(0.3)
    governance.delete(job)
    return {"error": f"{owner} did not answer within {timeout_s:.0f} s"}


# -- other hot-tier jobs ---------------------------------------------------------------------
def hot_owner_running(settings: Settings) -> bool:
    """A running writer owns the embedded hot store (its query endpoint answers)."""
    from spanline.query.client import endpoint_alive, endpoint_url
    from spanline.writer.config import dsn_is_embedded, resolve_dsn

    return dsn_is_embedded(resolve_dsn(settings)) and endpoint_alive(endpoint_url(settings))


def submit_hot_job(
    governance: GovernanceStore, kind: str, args: dict[str, Any], timeout_s: float
) -> dict[str, Any]:
    """Have the running writer do ``kind`` (see :data:`HOT_JOBS`) and return its result."""
    ident = f"{kind}-{uuid.uuid4().hex[:12]}"
    return _submit(
        governance,
        f"jobs/hot/{ident}.json",
        f"jobs/results/{ident}.json",
        {"kind": kind, "args": args},
        "the running writer",
        timeout_s,
    )


# holds last applied per client: the owner's poll skips the engine when nothing changed
_APPLIED: weakref.WeakKeyDictionary[Any, tuple[str, frozenset[str]]] = weakref.WeakKeyDictionary()


def sync_hot_holds(
    client: Any, database: str, governance: GovernanceStore, *, cached: bool = False
) -> dict[str, Any]:
    """The hot tables' TTLs leave exactly the projects on active legal hold alone.
    ``cached``: trust what this process applied through ``client`` last (the owner's poll;
    nobody else alters the TTL of a store it owns)."""
    from spanline.writer.migrate import apply_holds

    held = frozenset(governance.held_projects())
    if cached and _APPLIED.get(client) == (database, held):
        return {"held": sorted(held), "tables_changed": []}
    if not int(client.command(f"EXISTS DATABASE {database}")):
        return {"held": sorted(held), "tables_changed": [], "note": "no hot store"}
    changed = apply_holds(client, database, held)
    _APPLIED[client] = (database, held)
    if changed:
        log.info("hot TTL follows legal holds", extra={"held_projects": len(held), "tables": len(changed)})
    return {"held": sorted(held), "tables_changed": changed}


def _archive_read(
    client: Any, database: str, governance: GovernanceStore, args: dict[str, Any]
) -> dict[str, Any]:
    from spanline.coldtier.archive_sources import write_hot_rows

    return write_hot_rows(client, database, **args)


def _holds(client: Any, database: str, governance: GovernanceStore, args: dict[str, Any]) -> dict[str, Any]:
    return sync_hot_holds(client, database, governance)


HOT_JOBS = {"holds": _holds, "archive_read": _archive_read}


def run_hot_owner_jobs(
    client: Any, database: str, data_dir: Path | None, governance: GovernanceStore
) -> None:
    """Called by the writer that owns the embedded store, between batches: legal holds
    (every poll), erasures, then other jobs."""
    try:
        sync_hot_holds(client, database, governance, cached=True)
    except Exception as exc:  # the TTL keeps the last applied holds: nothing is lost by waiting
        log.error("legal hold sync failed", extra={"error": type(exc).__name__})
    run_pending_hot_erasures(client, database, data_dir, governance)
    for name in governance.list_names("jobs/hot"):
        job = governance.read_json(f"jobs/hot/{name}")
        if job is None:
            continue
        ident = name.removesuffix(".json")
        log.info("hot tier job", extra={"job": ident})
        run = HOT_JOBS.get(str(job.get("kind")))
        try:
            if run is None:
                raise ValueError(f"unknown job kind {job.get('kind')!r}")
            result = run(client, database, governance, dict(job.get("args") or {}))
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        governance.write_json(f"jobs/results/{ident}.json", result)
        governance.delete(f"jobs/hot/{name}")


def apply_hot_holds(
    settings: Settings, governance: GovernanceStore, timeout_s: float = 60.0
) -> dict[str, Any]:
    """After ``spanline hold set|release``: the hot store's owner (the running writer) or,
    offline, this process brings the TTLs up to date."""
    if hot_owner_running(settings):
        return submit_hot_job(governance, "holds", {}, timeout_s)
    return run_here(
        settings,
        lambda client: sync_hot_holds(client, settings.writer.database, governance),
        {"held": sorted(governance.held_projects()), "tables_changed": [], "note": "no hot store"},
    )


def run_here(
    settings: Settings, work: Callable[[Any], dict[str, Any]], no_store: dict[str, Any]
) -> dict[str, Any]:
    """``work(client)`` on the hot store opened by this process (no owner runs), or
    ``no_store`` when this data directory has no embedded store (none is created);
    ``{"error": ...}`` when it cannot be opened (e.g. another process holds it)."""
    from spanline.writer.config import chdb_path, resolve_dsn
    from spanline.writer.store import StoreError, connect

    dsn = resolve_dsn(settings)
    path = chdb_path(dsn)
    if path is not None and not path.exists():
        return no_store
    try:
        client = connect(dsn, database=None)
    except StoreError as exc:
        return {"error": str(exc)}
    try:
        return work(client)
    finally:
        client.close()


def erase(settings: Settings, req: ErasureRequest, *, timeout_s: float = 600.0) -> dict[str, Any]:
    """Both tiers, in order (ledger, cold, hot), each by its owner; returns the status record."""
    from spanline.coldtier.tables import ensure_tables
    from spanline.query.client import endpoint_alive, endpoint_url
    from spanline.writer.config import chdb_path, dsn_is_embedded, resolve_dsn

    governance = GovernanceStore.from_settings(settings)
    if req.projects:
        governance.check_no_hold(set(req.projects), "erasure")
    held = governance.held_projects()
    req.excluded_projects = sorted(held)
    status: dict[str, Any] = {**req.public(), "state": "running", "subject_kind": req.kind}
    governance.write_json(f"erasure/status/{req.request_id}.json", status)
    record_in_ledger(governance, req)

    if coldtier_running(settings, governance):
        cold = _await_result(governance, "cold", req, timeout_s)
    else:
        _, tables = ensure_tables(settings)
        cold = cold_part(settings, tables, governance, req)
    req.trace_ids = sorted(set(req.trace_ids) | set(cold.get("trace_ids", [])))

    dsn = resolve_dsn(settings)
    database = settings.writer.database
    if dsn_is_embedded(dsn) and endpoint_alive(endpoint_url(settings)):
        hot = _await_result(governance, "hot", req, timeout_s)
    else:
        from spanline.writer.store import connect

        client = connect(dsn, database=None)
        try:
            hot = hot_part(client, database, chdb_path(dsn), governance, req)
        finally:
            client.close()
    clean = (
        "error" not in cold
        and "error" not in hot
        and not cold["verify"]["files_with_subject"]
        and not hot["verify"]["files_with_subject"]
        and hot["verify"]["rows_left"] == 0
        and hot.get("outdated_parts_left", 0) == 0
    )
    for part in (cold, hot):
        part.pop("trace_ids", None)
        if "verify" in part:  # paths, not values; keep only the count of dirty files in the audit
            part["verify"] = {
                **part["verify"],
                "files_with_subject": len(part["verify"]["files_with_subject"]),
            }
    status = {
        **req.public(),
        "state": "verified" if clean else "incomplete",
        "cold": cold,
        "hot": hot,
        "skipped_projects_on_hold": req.excluded_projects,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    governance.write_json(f"erasure/status/{req.request_id}.json", status)
    governance.audit("erasure", status)
    log.info("erasure finished", extra={"request_id": req.request_id, "state": status["state"]})
    return status


def read_status(settings: Settings, request_id: str) -> dict[str, Any] | None:
    data = GovernanceStore.from_settings(settings).read_json(f"erasure/status/{request_id}.json")
    return dict(data) if data is not None else None


__all__ = [
    "HoldActive",
    "apply_hot_holds",
    "erase",
    "read_status",
    "run_hot_owner_jobs",
    "run_pending_cold_erasures",
    "run_pending_hot_erasures",
]
