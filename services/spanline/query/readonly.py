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
        raise QueryRejected(f"only read-only statements are allowed ({allowed}), got {keyword or '?'}")
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


@dataclass
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "types": self.types,
            "rows": [[jsonable(v) for v in r] for r in self.rows],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueryResult:
        return cls(list(data["columns"]), list(data["types"]), [list(r) for r in data["rows"]])

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
    return QueryResult(
        columns=list(result.column_names),
        types=[t.name for t in result.column_types],
        rows=[list(r) for r in result.result_rows[:max_rows]],
    )
