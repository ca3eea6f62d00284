"""The real pipeline for end-to-end tests: redactor and writer (and, when asked, the scorer)
as `spanline run` processes, ingest in a thread (its port is what the OTel SDK talks to),
one unique topic prefix and data directory per pipeline.

The scorer is off unless a test asks for it (``scorer=True``): it is one more process on a
shared machine, and most pipeline tests are about the hot path. When on, its quiet periods
are short (``SCORER_ENV``) so a test's traces close within seconds."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from spanline.core.broker import free_port
from spanline.ingest.service import IngestService
from spanline.query.client import HttpBackend
from spanline.settings import Settings
from tests.conftest import settings_env
from tests.support.services import ServiceProcess, ServiceThread

# a trace closes 1 s after its last span with a root (3 s without): tests wait seconds, not minutes
SCORER_ENV = {
    "SPANLINE_SCORER_QUIET_AFTER_ROOT_S": "1",
    "SPANLINE_SCORER_QUIET_NO_ROOT_S": "3",
    "SPANLINE_SCORER_TICK_INTERVAL_S": "0.2",
}


class Pipeline:
    def __init__(self, settings: Settings, workdir: Path, *, scorer: bool = False) -> None:
        self.settings = settings
        self.workdir = workdir
        self.query_port = settings.writer.query_port
        self.env = {
            **settings_env(settings),
            "SPANLINE_WRITER_QUERY_PORT": str(self.query_port),
            "SPANLINE_WRITER_BATCH_MAX_WAIT_S": "0.3",
            "SPANLINE_KAFKA_GROUP_PREFIX": settings.kafka.group_prefix,
        }
        self.redactor = ServiceProcess("redactor", self.env, free_port(), workdir / "redactor.log")
        self.writer = ServiceProcess("writer", self.env, free_port(), workdir / "writer.log")
        self.scorer = (
            ServiceProcess("scorer", {**self.env, **SCORER_ENV}, free_port(), workdir / "scorer.log")
            if scorer
            else None
        )
        self.ingest = ServiceThread(IngestService(settings))
        self.db = HttpBackend(f"http://127.0.0.1:{self.query_port}", settings.writer.database, timeout_s=30)

    @property
    def otlp_endpoint(self) -> str:
        return f"127.0.0.1:{self.ingest.component.port}"

    @property
    def processes(self) -> list[ServiceProcess]:
        return [self.redactor, self.writer] + ([self.scorer] if self.scorer is not None else [])

    def __enter__(self) -> Pipeline:
        self.ingest.__enter__()
        for proc in self.processes:
            proc.start(wait_ready=False)
        for proc in self.processes:
            proc.wait_ready(60)
        return self

    def __exit__(self, *exc: object) -> None:
        self.ingest.__exit__()
        for proc in self.processes:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.terminate(60)

    def restart_writer(self, env: dict[str, str] | None = None) -> None:
        if env:
            self.writer.env.update(env)
        self.writer.start(wait_ready=True, timeout=60)

    def scalar(self, sql: str) -> Any:
        return self.db.query(sql).rows[0][0]

    def stored_values(self, values: list[str]) -> dict[str, list[str]]:
        """Which of ``values`` are stored anywhere: every table of the database, every string
        column (from system.columns, so a new table or column is scanned without a test
        change), and every service log; {table or log file: values found}."""
        columns = self.db.query(
            "SELECT table, name FROM system.columns WHERE database = currentDatabase() "
            "AND type LIKE '%String%' ORDER BY table, name"
        ).rows
        tables: dict[str, list[str]] = {}
        for table, name in columns:
            tables.setdefault(table, []).append(name)
        if not {"spans", "logs", "audit"} <= set(tables):
            raise AssertionError(f"the scan would miss tables: only {sorted(tables)} have string columns")
        needles = (
            "[" + ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values) + "]"
        )
        found: dict[str, list[str]] = {}
        for table, names in tables.items():
            text = "concat(" + ", ' ', ".join(f"toString(`{n}`)" for n in names) + ")"
            hit = f"arrayJoin(arrayFilter(v -> position({text}, v) > 0, {needles}))"
            rows = self.db.query(f"SELECT DISTINCT {hit} FROM `{table}`", final=False).rows
            if rows:
                found[table] = [r[0] for r in rows]
        for proc in self.processes:
            log = (
                proc.log_path.read_text(encoding="utf-8", errors="replace") if proc.log_path.exists() else ""
            )
            hits = [v for v in values if v in log]
            if hits:
                found[proc.log_path.name] = hits
        return found

    def raw_scalar(self, sql: str) -> Any:
        """The stored rows as they are: no FINAL, so replays that wrote a row twice show."""
        return self.db.query(sql, final=False).rows[0][0]

    @property
    def writer_group(self) -> str:
        return self.settings.topics.group(self.settings.kafka, "writer")

    def wait_for(self, sql: str, expected: Any, timeout_s: float = 60) -> Any:
        """Poll until the query returns `expected` (a value or a predicate)."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.scalar(sql)
            except Exception as exc:  # the writer may be restarting
                last = exc
            ok = expected(last) if callable(expected) else last == expected
            if ok:
                return last
            time.sleep(0.3)
        raise AssertionError(
            f"{sql!r} gave {last!r}, wanted {expected!r}\nwriter log:\n{self.writer.logs()[-3000:]}"
        )
