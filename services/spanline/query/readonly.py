"""Read-only SQL: a statement check in front of ClickHouse's own ``readonly`` enforcement.

ClickHouse with ``readonly=2`` already refuses writes and DDL; the check here gives a clear
message before the engine is touched and blocks what readonly still allows but a query
surface must not offer: table functions that read local files or reach the network
(``file()``, ``url()``, ``s3()``, ``remote()``...), multiple statements, and ``SETTINGS``
that would lift the limits.
"""

from __future__ import annotations

import datetime as dt
import decimal
import difflib
import ipaddress
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

ALLOWED_STATEMENTS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})
DENIED_FUNCTIONS = frozenset(
    {
        "file",
        "filecluster",
        "url",
        "urlcluster",
        "s3",
        "s3cluster",
        "gcs",
        "oss",
        "cosn",
        "azureblobstorage",
        "azureblobstoragecluster",
        "hdfs",
        "hdfscluster",
        "remote",
        "remotesecure",
        "cluster",
        "clusterallreplicas",
        "mysql",
        "postgresql",
        "mongodb",
        "redis",
        "sqlite",
        "jdbc",
        "odbc",
        "executable",
        "python",
        "input",
        "iceberg",
        "iceberglocal",
        "icebergs3",
        "icebergazure",
        "icebergfs",
        "deltalake",
        "deltalakelocal",
        "hudi",
        "dictionary",
        "loop",
        "fuzzjson",
        "generaterandom",
        "ytsaurus",
    }
)
# statements that change something: named as such; any other first word is a syntax error
WRITE_STATEMENTS = frozenset(
    {
        "INSERT",
        "ALTER",
        "CREATE",
        "DROP",
        "TRUNCATE",
        "DELETE",
        "UPDATE",
        "RENAME",
        "OPTIMIZE",
        "SYSTEM",
        "KILL",
        "GRANT",
        "REVOKE",
        "ATTACH",
        "DETACH",
        "SET",
        "USE",
        "EXCHANGE",
        "UNDROP",
        "MOVE",
        "BACKUP",
        "RESTORE",
        "REPLACE",
        "UPSERT",
        "MERGE",
        "CHECK",
    }
)
# settings a user could otherwise raise inside the query text
_DENIED_SETTINGS = frozenset(
    {"readonly", "max_result_rows", "result_overflow_mode", "max_execution_time", "max_memory_usage"}
)

_TOKEN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FUNC_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")


class QueryRejected(ValueError):
    """The statement is not a single read-only query; the message says what is allowed."""


def _mask(sql: str) -> str:
    """The SQL with comments removed and string/identifier literals blanked, same length."""
    out = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if (ch == "-" and sql.startswith("--", i)) or ch == "#":
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif ch == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(" " * (end - i))
            i = end
        elif ch in "'\"`":
            j = i + 1
            while j < n:
                if sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            end = min(j + 1, n)
            # quoted identifiers stay a placeholder word, strings become empty quotes
            out.append(ch + " " * max(end - i - 2, 0) + (ch if end - i >= 2 else ""))
            i = end
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def check_readonly_sql(sql: str) -> str:
    """The statement without a trailing ``;`` if it is one read-only query, else QueryRejected."""
    text = sql.strip()
    masked = _mask(text).rstrip()
    while masked.endswith(";"):
        masked = masked[:-1].rstrip()
    text = text[: len(masked)]
    if not masked.strip():
        raise QueryRejected("empty query")
    if ";" in masked:
        raise QueryRejected("one statement per query")
    first = _TOKEN_RE.search(masked)
    keyword = first.group(0).upper() if first else ""
    if keyword not in ALLOWED_STATEMENTS:
        allowed = ", ".join(sorted(ALLOWED_STATEMENTS))
        if keyword not in WRITE_STATEMENTS:  # a typo (SELEC), not a write attempt
            guess = difflib.get_close_matches(keyword, sorted(ALLOWED_STATEMENTS), n=1, cutoff=0.6)
            hint = f"; did you mean {guess[0]}?" if guess else f" (read-only statements: {allowed})"
            raise QueryRejected(
                f"syntax error: {keyword or first_word(text)!r} does not start a statement{hint}"
            )
        raise QueryRejected(f"only read-only statements are allowed ({allowed}), got {keyword}")
    for match in _FUNC_RE.finditer(masked):
        name = match.group(1).lower()
        if name in DENIED_FUNCTIONS:
            raise QueryRejected(f"table function {match.group(1)}() is not available on the query surface")
    upper = masked.upper()
    for setting in _DENIED_SETTINGS:
        if re.search(rf"\b{setting.upper()}\s*=", upper):
            raise QueryRejected(f"setting {setting} cannot be changed from a query")
    if re.search(r"\bINTO\s+OUTFILE\b", upper):
        raise QueryRejected("INTO OUTFILE is not available on the query surface")
    return text


def first_word(text: str) -> str:
    return text.split(None, 1)[0][:40] if text.split() else ""


# What the client library appends to the statement; engine errors quote it back.
_ECHOED_SETTINGS = re.compile(
    r"\s*(?:SETTINGS\s+)?max_result_rows\s*=\s*'?\d+'?(?:\s*,\s*\w+\s*=\s*'[^']*')*", re.S
)
_ECHOED_FORMAT = re.compile(r"\s*FORMAT\s+Native\b\.?")
_CODE_PREFIX = re.compile(r"^Code:\s*\d+\.\s*DB::Exception:\s*")
_SYNTAX = re.compile(
    r"^(?P<why>.*?)Syntax error: failed at position (?P<pos>\d+) .*?FORMAT Native\.\s*(?P<rest>.*)$", re.S
)


def engine_error_text(exc: BaseException, sql: str | None = None, limit: int = 600) -> str:
    """An engine error for a person: never the settings and format the CLI appended to the
    statement (the engine quotes them back), syntax errors called so and placed in the
    person's own statement, a long 'Expected one of' list cut short."""
    text = " ".join(str(exc).split())
    text = _CODE_PREFIX.sub("", text).strip() or type(exc).__name__
    syntax = _SYNTAX.match(text)
    if syntax is None:
        return _ECHOED_FORMAT.sub("", _ECHOED_SETTINGS.sub("", text)).strip()[:limit]
    statement = _statement_or_raw(sql) if sql is not None else None
    why = syntax.group("why").strip().rstrip(":").strip()
    pos = int(syntax.group("pos"))
    rest = syntax.group("rest").strip().strip(". ").removesuffix("(SYNTAX_ERROR)").strip().rstrip(".")
    head, sep, expected = rest.partition("Expected one of:")
    if sep:
        items = [i.strip() for i in expected.split(",") if i.strip()]
        more = ", ..." if len(items) > 8 else ""
        rest = f"{head.strip()} expected one of: {', '.join(items[:8])}{more}".strip()
    parts = [why[:1].lower() + why[1:]] if why else []
    if statement is not None and pos > len(statement):
        parts.append("the statement ends too early")
    elif statement is not None:
        parts.append(f"at position {pos}: {' '.join(statement[pos - 1 : pos + 39].split())!r}")
    else:
        parts.append(f"at position {pos}")
    if rest:
        parts.append(rest)
    return ("syntax error: " + "; ".join(p for p in parts if p))[:limit]


def _statement_or_raw(sql: str) -> str:
    """The statement as the engine received it (positions count from its start)."""
    try:
        return check_readonly_sql(sql)
    except QueryRejected:
        return sql.strip()


@dataclass
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    # more rows exist than the row cap let through
    truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "types": self.types,
            "rows": [[jsonable(v) for v in r] for r in self.rows],
            "truncated": self.truncated,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueryResult:
        return cls(
            list(data["columns"]),
            list(data["types"]),
            [list(r) for r in data["rows"]],
            bool(data.get("truncated", False)),
        )

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def jsonable(value: Any) -> Any:
    """ClickHouse result values as JSON-safe Python values (no precision lost silently)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value).hex()
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return str(value)


def run_readonly(
    client: Any,
    sql: str,
    *,
    max_rows: int = 100_000,
    timeout_s: float = 30.0,
    final: bool = True,
) -> QueryResult:
    """Run one checked read-only statement; ``final`` dedupes ReplacingMergeTree rows.

    ``client`` should itself be read-only (``spanline.writer.store.connect(readonly=True)``):
    the engine enforcement is the real boundary, this function the friendly one.
    """
    statement = check_readonly_sql(sql)
    settings: dict[str, Any] = {
        "max_result_rows": max_rows,
        "result_overflow_mode": "break",
        "max_execution_time": max(1, int(timeout_s)),
    }
    if final:
        settings["final"] = 1
    result = client.query(statement, settings=settings)
    columns, types = list(result.column_names), [t.name for t in result.column_types]
    rows = result.result_rows
    if not rows and not columns and _keyword(statement) in ("SELECT", "WITH"):
        # the embedded engine sends no columns with an empty result; the header still matters
        described = client.query(f"DESCRIBE TABLE ({statement})", settings={"max_execution_time": 10})
        columns = [str(r[0]) for r in described.result_rows]
        types = [str(r[1]) for r in described.result_rows]
    # with result_overflow_mode=break the engine returns whole blocks past the cap when more exist
    return QueryResult(
        columns=columns,
        types=types,
        rows=[list(r) for r in rows[:max_rows]],
        truncated=len(rows) > max_rows,
    )


def _keyword(statement: str) -> str:
    first = _TOKEN_RE.search(_mask(statement))
    return first.group(0).upper() if first else ""
