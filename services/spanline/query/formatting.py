"""Query results as an aligned terminal table, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Sequence
from typing import Any

from spanline.query.readonly import QueryResult, jsonable


def cell_text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        return json.dumps(jsonable(value), ensure_ascii=False, separators=(",", ":"))
    return str(jsonable(value))


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def clip(text: str, width: int) -> str:
    """One line, at most ``width`` columns, with an ellipsis when cut."""
    flat = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    if display_width(flat) <= width:
        return flat
    out, used = [], 0
    for ch in flat:
        w = 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def pad(text: str, width: int, right: bool = False) -> str:
    gap = " " * max(width - display_width(text), 0)
    return gap + text if right else text + gap


def render_table(
    columns: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: Sequence[bool] = ()
) -> str:
    widths = [display_width(c) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], display_width(cell))
    right = list(numeric) + [False] * (len(columns) - len(numeric))
    lines = [
        "  ".join(pad(c, widths[i], right[i]) for i, c in enumerate(columns)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    for row in rows:
        lines.append("  ".join(pad(cell, widths[i], right[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines)


_NUMERIC_PREFIXES = ("UInt", "Int", "Float", "Decimal", "Nullable(UInt", "Nullable(Int", "Nullable(Float")


def format_result(result: QueryResult, fmt: str = "table", *, max_cell: int = 60) -> str:
    if fmt == "json":
        return json.dumps(
            [{k: jsonable(v) for k, v in r.items()} for r in result.records()], ensure_ascii=False
        )
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(result.columns)
        for row in result.rows:
            writer.writerow(["" if v is None else cell_text(v) for v in row])
        return buf.getvalue().rstrip("\n")
    numeric = [t.startswith(_NUMERIC_PREFIXES) for t in result.types]
    cells = [[clip(cell_text(v), max_cell) for v in row] for row in result.rows]
    table = render_table(result.columns, cells, numeric=numeric)
    n = len(result.rows)
    return f"{table}\n({n} row{'s' if n != 1 else ''})"
