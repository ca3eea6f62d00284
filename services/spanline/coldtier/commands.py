"""`spanline hold`, `spanline cold maintain`, `spanline erase`, `spanline archive`."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime
from typing import Any

from spanline.settings import Settings, load_settings


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML settings file (also SPANLINE_CONFIG)")


def _governance(settings: Settings) -> Any:
    from spanline.coldtier.governance import GovernanceStore

    return GovernanceStore.from_settings(settings)


# -- hold ------------------------------------------------------------------------------------
def _cmd_hold(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    gov = _governance(settings)
    by = args.by or getpass.getuser()
    if args.hold_cmd == "set":
        try:
            hold = gov.set_hold(args.project, args.reason, args.expires, by)
        except ValueError as exc:
            print(f"spanline hold: {exc}", file=sys.stderr)
            return 2
        print(f"legal hold set on {hold.project} (expires {hold.expires_at or 'never'})")
        return _hot_holds(settings, gov, args.timeout)
    if args.hold_cmd == "release":
        if not gov.release_hold(args.project, by, args.reason):
            print(f"spanline hold: no hold on {args.project}", file=sys.stderr)
            return 1
        print(f"legal hold on {args.project} released")
        return _hot_holds(settings, gov, args.timeout)
    now = datetime.now(UTC)
    holds = gov.holds()
    if args.json:
        print(json.dumps([{**_hold(h), "active": h.active(now)} for h in holds]))
        return 0
    if not holds:
        print("no legal holds")
    for h in holds:
        state = "active" if h.active(now) else "expired"
        print(f"{h.project}\t{state}\texpires={h.expires_at or 'never'}\tset_by={h.set_by}\t{h.reason}")
    return 0


def _hot_holds(settings: Settings, gov: Any, timeout_s: float) -> int:
    """The hot tier's TTL follows the holds now (the cold tier reads them at each retention
    pass); exit 1 when the hot store could not be reached (the writer applies them when it
    next starts)."""
    from spanline.coldtier.jobs import apply_hot_holds

    result = apply_hot_holds(settings, gov, timeout_s)
    if "error" in result:
        print(
            f"spanline hold: the hold is recorded, but the hot tier's TTL was not updated: {result['error']}",
            file=sys.stderr,
        )
        return 1
    held = ", ".join(result["held"]) or "none"
    note = f"; {result['note']}" if result.get("note") else ""
    print(f"hot tier: retention deletes skip projects on hold ({held}){note}")
    return 0


def _hold(h: Any) -> dict[str, Any]:
    from spanline.coldtier.governance import hold_dict

    return hold_dict(h)


# -- cold maintain ---------------------------------------------------------------------------
def _cmd_maintain(args: argparse.Namespace) -> int:
    from spanline.coldtier.maintenance import run_maintenance
    from spanline.coldtier.tables import ensure_tables

    settings = load_settings(args.config)
    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    _, tables = ensure_tables(settings)
    report = run_maintenance(settings, tables, _governance(settings), steps=steps)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        for r in report.steps:
            items = " ".join(f"{k}={v}" for k, v in sorted(r.items.items())) or "nothing to do"
            print(f"{r.table:7} {r.step:10} {r.seconds:7.3f}s  {items}  {r.detail}")
    failed = [r for r in report.steps if r.detail.startswith("failed")]
    return 1 if failed else 0


# -- erase -----------------------------------------------------------------------------------
def _cmd_erase(args: argparse.Namespace) -> int:
    from spanline.coldtier.erasure import ErasureRequest, new_request_id
    from spanline.coldtier.governance import HoldActive, utc_now_iso
    from spanline.coldtier.jobs import erase, read_status
    from spanline.coldtier.subjects import stored_forms

    settings = load_settings(args.config)
    if args.status:
        status = read_status(settings, args.status)
        if status is None:
            print(f"spanline erase: no erasure request {args.status}", file=sys.stderr)
            return 1
        print(json.dumps(status, indent=2))
        return 0 if status.get("state") == "verified" else 1
    if not args.requester:
        print("spanline erase: --requester is required", file=sys.stderr)
        return 2
    kind, value = ("user_id", args.user_id) if args.user_id else ("conversation_id", args.conversation_id)
    if not value:
        print("spanline erase: give --user-id or --conversation-id", file=sys.stderr)
        return 2
    gov = _governance(settings)
    projects = [args.project] if args.project else None
    known = projects or _known_projects(settings)
    req = ErasureRequest(
        request_id=new_request_id(),
        kind=kind,
        forms=stored_forms(settings, kind, value, known),
        subject_hmac=gov.digest(kind, value),
        requester=args.requester,
        projects=projects,
        created_at=utc_now_iso(),
    )
    try:
        status = erase(settings, req, timeout_s=args.timeout)
    except HoldActive as exc:
        print(f"spanline erase: {exc}", file=sys.stderr)
        return 3
    print(f"request {req.request_id}: {status['state']}")
    print(json.dumps({k: status[k] for k in ("cold", "hot", "skipped_projects_on_hold")}, indent=2))
    return 0 if status["state"] == "verified" else 1


# -- archive ---------------------------------------------------------------------------------
def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _cmd_archive(args: argparse.Namespace) -> int:
    from pathlib import Path

    from spanline.coldtier import archive

    if args.archive_cmd == "keygen":
        priv, pub, kid = archive.keygen(args.out)
        print(f"private key {priv} (keep it secret), public key {pub}")
        print(f"key id {kid}: publish it out of band; verifiers pin it")
        return 0
    if args.archive_cmd == "verify":
        try:
            public = archive.load_public(Path(args.pubkey))
        except (OSError, ValueError) as exc:
            print(f"spanline archive verify: {exc}", file=sys.stderr)
            return 2
        problems = archive.verify(Path(args.path), public)
        for p in problems:
            print(f"FAIL {p}", file=sys.stderr)
        if problems:
            return 1
        print(f"OK {args.path}: signature by {archive.key_id(public)}, every file and count verified")
        return 0
    from rich.progress import Progress

    settings = load_settings(args.config)
    tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    unknown = [t for t in tables if t not in ("spans", "scores")]
    if unknown:
        print(f"spanline archive export: unknown tables {', '.join(unknown)}", file=sys.stderr)
        return 2
    from spanline.coldtier.archive_sources import HotReadError

    try:
        with Progress(transient=True) as bar:
            task = bar.add_task("export", total=None)

            def progress(step: str, done: int, total: int) -> None:
                bar.update(task, description=step, completed=done, total=total or None)

            result = archive.export(
                settings,
                project=args.project,
                start=_parse_time(getattr(args, "from")),
                end=_parse_time(args.to),
                tables=tables,
                key_path=Path(args.key),
                out=Path(args.out),
                progress=progress,
                timeout_s=args.timeout,
            )
    except HotReadError as exc:
        print(f"spanline archive export: {exc}; no archive written", file=sys.stderr)
        return 1
    counts = ", ".join(f"{k}={v}" for k, v in result.records.items())
    tiers = ", ".join(f"{k} {v['cold']} cold + {v['hot']} hot" for k, v in result.by_tier.items())
    print(f"wrote {result.path}: {result.files} data files, {counts} ({tiers}), signed by {result.key_id}")
    return 0


def _known_projects(settings: Settings) -> list[str]:
    """Projects that may hold the subject: the cold tier's partitions plus the default."""
    from spanline.coldtier.tables import ensure_tables

    out = {settings.project}
    try:
        _, tables = ensure_tables(settings)
        parts = tables["spans"].inspect.partitions()
        if parts.num_rows:
            out.update(p["project_id"] for p in parts.column("partition").to_pylist())
    except Exception as exc:  # the cold tier may not exist yet: raw form and default project still count
        print(f"spanline erase: cold tier projects unknown ({type(exc).__name__})", file=sys.stderr)
    return sorted(out)


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("hold", help="legal holds: suspend retention and erasure for a project")
    hs = p.add_subparsers(dest="hold_cmd", required=True)
    q = hs.add_parser("set", help="put a project on legal hold (audited)")
    q.add_argument("project")
    q.add_argument("--reason", required=True, help="why (case number, request)")
    q.add_argument("--expires", default=None, help="ISO 8601 time the hold ends (default: until released)")
    q.add_argument("--by", default=None, help="who sets it (default: the OS user)")
    q.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a running writer")
    _config_arg(q)
    q = hs.add_parser("release", help="lift a project's legal hold (audited)")
    q.add_argument("project")
    q.add_argument("--reason", required=True)
    q.add_argument("--by", default=None)
    q.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a running writer")
    _config_arg(q)
    q = hs.add_parser("list", help="list legal holds")
    q.add_argument("--json", action="store_true")
    _config_arg(q)
    p.set_defaults(func=_cmd_hold)

    p = subparsers.add_parser("cold", help="cold tier (Iceberg) operations")
    cs = p.add_subparsers(dest="cold_cmd", required=True)
    q = cs.add_parser(
        "maintain",
        help="compact, apply retention, expire snapshots, remove orphans; prints what each step did",
        description="Run while the coldtier is stopped, or with orphan_min_age_s large enough that "
        "files of an in-flight commit are never taken for orphans.",
    )
    q.add_argument(
        "--steps", default="compact,retention,expire,orphans", help="comma-separated subset, in order"
    )
    q.add_argument("--json", action="store_true")
    _config_arg(q)
    q.set_defaults(func=_cmd_maintain)

    p = subparsers.add_parser(
        "archive", help="signed, verifiable audit archives (BagIt + DSSE/in-toto, Ed25519)"
    )
    ars = p.add_subparsers(dest="archive_cmd", required=True)
    q = ars.add_parser("keygen", help="write PREFIX.pem (private) and PREFIX.pub.pem; print the key id")
    q.add_argument("--out", required=True, metavar="PREFIX")
    q = ars.add_parser(
        "export",
        help="export a project's time range as a signed bag: the cold tier, plus hot rows not yet cold",
    )
    q.add_argument("--project", required=True)
    q.add_argument("--from", required=True, metavar="T1", help="ISO 8601 start (inclusive; UTC if no offset)")
    q.add_argument("--to", required=True, metavar="T2", help="ISO 8601 end (exclusive)")
    q.add_argument("--tables", default="spans,scores")
    q.add_argument("--key", required=True, metavar="KEY.pem", help="Ed25519 private key (archive keygen)")
    q.add_argument("--out", required=True, metavar="DIR|FILE.tar", help="a new directory, or a .tar file")
    q.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for a running writer's hot-tier rows"
    )
    _config_arg(q)
    q = ars.add_parser(
        "verify", help="check signature, every file's SHA-256, counts; exit 1 naming each problem"
    )
    q.add_argument("path", metavar="DIR|FILE.tar")
    q.add_argument("--pubkey", required=True, metavar="PUB.pem", help="the publisher's public key, pinned")
    p.set_defaults(func=_cmd_archive)

    p = subparsers.add_parser(
        "erase",
        help="erase a data subject physically from both tiers, verified, with an audit record",
        description="Also erases rows stored under the subject's pseudonyms. Against a running pipeline "
        "the writer and the coldtier do their tier's part; offline this command does both. "
        "A legal hold on --project refuses; without --project, held projects are skipped and listed.",
    )
    who = p.add_mutually_exclusive_group()
    who.add_argument("--user-id", default=None)
    who.add_argument("--conversation-id", default=None)
    who.add_argument("--status", default=None, metavar="ID", help="show the record of an erasure request")
    p.add_argument("--project", default=None)
    p.add_argument("--requester", default=None, help="who asked (recorded in the audit record)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for a running tier owner")
    _config_arg(p)
    p.set_defaults(func=_cmd_erase)
