"""`spanline migrate`."""

from __future__ import annotations

import argparse
import sys

from spanline.settings import Settings, load_settings


def run_migrate(settings: Settings, *, print_only: bool = False) -> int:
    from spanline.writer.config import redact_dsn, resolve_dsn
    from spanline.writer.migrate import MigrationError, load_migrations
    from spanline.writer.store import StoreError, open_store

    r = settings.retention
    if print_only:
        params = {
            "database": settings.writer.database,
            "hot_days": str(r.hot_days),
            "retain_days": str(max(r.hot_days, r.cold_days)),
        }
        for m in load_migrations():
            print(f"-- {m.version:04d}_{m.name}")
            for stmt in m.statements(**params):
                print(stmt + ";\n")
        return 0
    try:
        store = open_store(settings, migrate=False)
    except StoreError as exc:
        print(f"spanline migrate: {exc}", file=sys.stderr)
        return 1
    try:
        applied = store.migrate(r.hot_days, max(r.hot_days, r.cold_days))
    except (MigrationError, StoreError) as exc:
        print(f"spanline migrate: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    where = redact_dsn(resolve_dsn(settings))
    if applied:
        print(f"applied {', '.join(f'{v:04d}' for v in applied)} to {settings.writer.database} at {where}")
    else:
        print(f"{settings.writer.database} at {where} is up to date")
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    return run_migrate(load_settings(args.config), print_only=args.print)


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("migrate", help="create or upgrade the ClickHouse schema (idempotent)")
    p.add_argument("--print", action="store_true", help="print the SQL instead of applying it")
    p.add_argument("--config", metavar="FILE", help="YAML settings file (also SPANLINE_CONFIG)")
    p.set_defaults(func=_cmd_migrate)
