"""``spanline redact``: try a policy on sample data before deploying it.

Reads stdin as text lines, JSON lines, or OTLP JSON (what the Collector's file exporter
and OTLP/HTTP JSON carry: ``resourceSpans`` / ``resourceLogs``, ids in hex) and prints the
redacted form, plus a summary of what was redacted on stderr. Exit codes: 0 ok, 1 bad
input, 2 usage, policy or configuration error. No tracebacks: messages name what is
wrong and where, never the offending values.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from google.protobuf import json_format
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from spanline.redactor.engine import Redactor
from spanline.redactor.errors import PolicyError, RedactionError
from spanline.redactor.report import RedactionReport

FORMATS = ("auto", "text", "jsonl", "otlp-json")
_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


class InputError(Exception):
    """stdin does not hold what --format says; the message says where."""


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "redact",
        help="redact stdin (text, JSON lines or OTLP JSON) with a policy and print the result",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="FILE", help="YAML settings file (also SPANLINE_CONFIG)")
    p.add_argument("--policy", type=Path, help="YAML redaction policy (default: redactor.policy_file)")
    p.add_argument("--project", default="default", help="project id whose policy section applies")
    p.add_argument("--format", choices=FORMATS, default="auto", help="input format (default: detect)")
    p.add_argument("--quiet", "-q", action="store_true", help="no summary on stderr")
    p.set_defaults(func=run_redact)


def _convert_ids(node: Any, convert: Callable[[str, str], str]) -> Any:
    """Apply ``convert`` to every id field of a JSON document, in place."""
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            for k, v in cur.items():
                if k in _ID_FIELDS and isinstance(v, str):
                    cur[k] = convert(k, v)
                elif isinstance(v, dict | list):
                    stack.append(v)
        elif isinstance(cur, list):
            stack.extend(x for x in cur if isinstance(x, dict | list))
    return node


def _hex_id_to_b64(field: str, value: str) -> str:
    """OTLP JSON writes ids as hex; protobuf's JSON mapping wants base64."""
    try:
        return base64.b64encode(bytes.fromhex(value)).decode("ascii")
    except ValueError:
        raise InputError(f"{field} is not hex") from None


def _b64_id_to_hex(_field: str, value: str) -> str:
    try:
        return base64.b64decode(value).hex()
    except (ValueError, binascii.Error):
        return value  # not ours to fix: the id is printed as protobuf gave it


def _is_otlp(doc: Any) -> bool:
    return isinstance(doc, dict) and bool(
        {"resourceSpans", "resourceLogs", "resource_spans", "resource_logs"} & doc.keys()
    )


def _detect(data: str) -> str:
    stripped = data.strip()
    if not stripped:
        return "text"
    if stripped[0] == "{":
        try:
            if _is_otlp(json.loads(stripped)):
                return "otlp-json"
        except (ValueError, RecursionError):
            pass
    lines = [ln for ln in stripped.splitlines() if ln.strip()]
    try:
        docs = [json.loads(ln) for ln in lines]
    except (ValueError, RecursionError):
        return "text"
    if docs and all(_is_otlp(d) for d in docs):
        return "otlp-json"
    return "jsonl"


def _redact_otlp_doc(redactor: Redactor, doc: Any, project: str, where: str) -> tuple[Any, RedactionReport]:
    if not _is_otlp(doc):
        raise InputError(f"{where}: not an OTLP JSON document (no resourceSpans or resourceLogs)")
    is_traces = "resourceSpans" in doc or "resource_spans" in doc
    message: TracesData | LogsData = TracesData() if is_traces else LogsData()
    try:
        json_format.ParseDict(_convert_ids(doc, _hex_id_to_b64), message)
    except json_format.ParseError as exc:
        # ParseError messages name fields and types; values of string fields are not quoted.
        raise InputError(f"{where}: invalid OTLP JSON: {str(exc).splitlines()[0][:300]}") from None
    if isinstance(message, TracesData):
        report = redactor.redact_traces(message, project)
    else:
        report = redactor.redact_logs(message, project)
    return _convert_ids(json_format.MessageToDict(message), _b64_id_to_hex), report


def redact_stream(
    redactor: Redactor, data: str, fmt: str, project: str, out: TextIO
) -> tuple[RedactionReport, str]:
    """Redact ``data`` in format ``fmt`` (or detected) to ``out``; returns the report and the format used."""
    if fmt == "auto":
        fmt = _detect(data)
    report = RedactionReport()
    if fmt == "text":
        for line in data.splitlines(keepends=True):
            body = line.rstrip("\r\n")
            new, r = redactor.redact_text(body, project, plain=True)
            out.write(new + line[len(body) :])
            report.merge(r)
    elif fmt == "jsonl":
        for n, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                out.write("\n")
                continue
            try:
                value = json.loads(line)
            except (ValueError, RecursionError):
                raise InputError(f"line {n}: not valid JSON") from None
            new_value, r = redactor.redact_json(value, project)
            out.write(json.dumps(new_value, ensure_ascii=False) + "\n")
            report.merge(r)
    else:
        stripped = data.strip()
        try:
            docs = [(json.loads(stripped), "input")]
        except (ValueError, RecursionError):
            docs = []
            for n, line in enumerate(stripped.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    docs.append((json.loads(line), f"line {n}"))
                except (ValueError, RecursionError):
                    raise InputError(f"line {n}: not valid JSON") from None
        for doc, where in docs:
            new_doc, r = _redact_otlp_doc(redactor, doc, project, where)
            out.write(json.dumps(new_doc, ensure_ascii=False) + "\n")
            report.merge(r)
    return report, fmt


def _summary(report: RedactionReport) -> str:
    if not report:
        return "nothing redacted"
    parts = [f"{d}/{a}={n}" for (d, a), n in sorted(report.counts.items())]
    return "redacted: " + ", ".join(parts)


def run_redact(args: argparse.Namespace) -> int:
    from spanline.settings import ConfigError, load_settings

    def fail(msg: str, code: int) -> int:
        print(f"spanline redact: {msg}", file=sys.stderr)
        return code

    try:
        settings = load_settings(getattr(args, "config", None))
        redactor_settings = settings.redactor
        if args.policy is not None:
            redactor_settings = redactor_settings.model_copy(update={"policy_file": args.policy})
        redactor = Redactor.from_settings(redactor_settings)
    except (ConfigError, PolicyError) as exc:
        return fail(str(exc), 2)
    try:
        data = sys.stdin.read()
    except UnicodeDecodeError:
        return fail("stdin is not valid UTF-8", 1)
    try:
        report, fmt = redact_stream(redactor, data, args.format, args.project, sys.stdout)
    except InputError as exc:
        return fail(str(exc), 1)
    except RedactionError as exc:
        return fail(f"cannot redact the input: {exc}", 1)
    if not args.quiet:
        print(f"spanline redact ({fmt}, project {args.project}): {_summary(report)}", file=sys.stderr)
    return 0
