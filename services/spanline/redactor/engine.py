"""The redaction engine: OTLP traces/logs in, the same messages redacted in place, a report out.

The service loop (raw -> redacted/audit/dlq) calls :meth:`Redactor.redact_payload` (or
``redact_traces`` / ``redact_logs`` on parsed messages). Fail closed: any problem is a
:class:`RedactionError`, after which the message object is in an undefined, partially
redacted state and must be discarded; the caller sends the original bytes to the DLQ.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal

from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from spanline.redactor.config import RedactorSettings
from spanline.redactor.detectors import Scanner
from spanline.redactor.errors import PolicyError, RedactionError, UndecodableError
from spanline.redactor.metrics import record_redactions
from spanline.redactor.ner import FREE_TEXT_KEY, BatchNer
from spanline.redactor.policy import PolicyFile, load_policy, resolve
from spanline.redactor.prefilter import (
    Prefilter,
    log_record_attribute_bytes,
    log_record_without_attributes,
    span_attribute_bytes,
    span_without_attributes,
)
from spanline.redactor.report import RedactionReport
from spanline.redactor.walker import REDACTION_ATTR, CompiledPolicy, Limits, MessageWalk

__all__ = [
    "REDACTION_ATTR",
    "Limits",
    "PolicyError",
    "RedactionError",
    "Redactor",
    "Signal",
    "UndecodableError",
]

Signal = Literal["traces", "logs"]
_log = logging.getLogger(__name__)
_MAX_CACHED_PROJECTS = 10_000


class Redactor:
    """Redacts OTLP messages according to a policy; one instance per process, thread-safe.

    Build it with :meth:`from_settings`. Construction validates the policy for the
    global section and every listed project (so a bad policy fails at start-up, not on
    the first message of some project).
    """

    def __init__(
        self,
        policy: PolicyFile | None = None,
        *,
        pseudonym_secret: bytes | str | None = None,
        ner: BatchNer | None = None,
        limits: Limits | None = None,
        fast_paths: bool = True,
    ) -> None:
        """``fast_paths=False`` walks every element and parses every JSON document even when
        the prefilter proves nothing would change (same results; for benchmarks and tests)."""
        self._policy = policy or PolicyFile()
        self._secret = (
            pseudonym_secret.encode("utf-8") if isinstance(pseudonym_secret, str) else pseudonym_secret
        )
        self._ner = ner
        self._limits = limits or Limits()
        self._compiled: OrderedDict[str, CompiledPolicy] = OrderedDict()
        self._scanners: dict[tuple[object, ...], Scanner] = {}
        self._prefilters: dict[tuple[object, ...], Prefilter] = {}
        self._fast_paths = fast_paths
        for project in ["", *self._policy.projects]:
            resolve(self._policy, project, global_secret=self._secret, ner=ner is not None)

    @classmethod
    def from_settings(cls, settings: RedactorSettings) -> Redactor:
        """Load the policy file, the secret and (if enabled) NER; raises :class:`PolicyError`."""
        policy = load_policy(settings.policy_file)
        secret = settings.pseudonym_secret.get_secret_value() if settings.pseudonym_secret else None
        ner: BatchNer | None = None
        if settings.ner:
            from spanline.redactor.ner import SpacyNer

            ner = SpacyNer(settings.ner_model)
        limits = Limits(max_json_depth=settings.max_json_depth, max_string_chars=settings.max_string_chars)
        redactor = cls(policy, pseudonym_secret=secret or None, ner=ner, limits=limits)
        if not redactor.policy_for("").identifier_keys:
            _log.warning(
                "no pseudonym secret (redactor.pseudonym_secret): identifier attributes such as user.id "
                "and session.id are not pseudonymized, only scanned by the detectors"
            )
        return redactor

    def policy_for(self, project: str) -> CompiledPolicy:
        """The compiled policy of a project (cached, bounded LRU)."""
        compiled = self._compiled.get(project)
        if compiled is not None:
            self._compiled.move_to_end(project)
            return compiled
        resolved = resolve(self._policy, project, global_secret=self._secret, ner=self._ner is not None)
        compiled = CompiledPolicy(
            resolved, self._limits, self._ner, self._scanners, self._prefilters, fast_paths=self._fast_paths
        )
        self._compiled[project] = compiled
        if len(self._compiled) > _MAX_CACHED_PROJECTS:
            self._compiled.popitem(last=False)
        return compiled

    def warm(self, project: str = "default") -> None:
        """Compile ``project``'s policy and its Hyperscan databases for the calling thread
        now: ~0.6 s of CPU the first message would otherwise wait for (after readiness)."""
        compiled = self.policy_for(project)
        compiled.scanner.warm()
        if compiled.prefilter is not None:
            compiled.prefilter.warm()

    def actions(self, project: str) -> dict[str, str]:
        """Enabled detectors of a project and their actions."""
        return dict(self.policy_for(project).actions)

    # -- OTLP ----------------------------------------------------------------------------

    def redact_traces(self, data: TracesData, project: str) -> RedactionReport:
        """Redact every string reachable in ``data`` in place; see the module doc for failures."""
        return self._guarded(_walk_traces, data, project)

    def redact_logs(self, data: LogsData, project: str) -> RedactionReport:
        """Redact every string reachable in ``data`` in place (bodies, attributes, event names)."""
        return self._guarded(_walk_logs, data, project)

    def redact_payload(self, payload: bytes, signal: Signal, project: str) -> tuple[bytes, RedactionReport]:
        """Parse an ``otlp_proto`` Kafka value, redact it, serialise it.

        Raises :class:`UndecodableError` if the bytes are not the announced OTLP message and
        :class:`RedactionError` for anything else that went wrong.
        """
        message: TracesData | LogsData
        if signal == "traces":
            message = TracesData()
        elif signal == "logs":
            message = LogsData()
        else:
            raise UndecodableError("unknown signal (expected 'traces' or 'logs')")
        try:
            message.ParseFromString(payload)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise UndecodableError(
                f"payload is not a valid OTLP {signal} protobuf ({type(exc).__name__})"
            ) from None
        walk = self._run(_walk_traces if isinstance(message, TracesData) else _walk_logs, message, project)
        report = self._report(walk)
        if not walk.changed:
            # Nothing was redacted or removed: the original bytes encode the same message.
            return payload, report
        try:
            return message.SerializeToString(), report
        except Exception as exc:
            raise RedactionError(f"cannot serialise the redacted message ({type(exc).__name__})") from None

    # -- plain values (CLI, tests, benchmarks) -------------------------------------------

    def redact_text(
        self, text: str, project: str, *, key: str | None = None, plain: bool = False
    ) -> tuple[str, RedactionReport]:
        """Redact one string value as the engine would inside an attribute named ``key``.

        JSON-aware unless ``plain`` (then the string is only scanned as text).
        """

        def run(walk: MessageWalk, value: str) -> str:
            new = walk.text(value) if plain else walk.string(value, key)
            out = value if new is None else new
            if walk.p.ner is not None and (plain or key is None or FREE_TEXT_KEY.match(key)):
                holder = AnyValue(string_value=out)
                if plain:
                    out = walk.ner_texts([out])[0] or out
                else:
                    walk.ner_value(holder)
                    out = holder.string_value
            walk.flush(None)
            return out

        return self._guarded_value(run, text, project)

    def redact_json(self, value: Any, project: str) -> tuple[Any, RedactionReport]:
        """Redact a parsed JSON value (dicts/lists modified in place); string leaves may hold JSON too."""

        def run(walk: MessageWalk, v: Any) -> Any:
            out = walk.json_value(v)
            walk.flush(None)
            return out

        return self._guarded_value(run, value, project)

    # -- internals -----------------------------------------------------------------------

    def _guarded(self, fn: Any, data: Any, project: str) -> RedactionReport:
        return self._report(self._run(fn, data, project))

    def _run(self, fn: Any, data: Any, project: str) -> MessageWalk:
        walk = MessageWalk(self.policy_for(project))
        try:
            fn(walk, data)
            if walk.p.ner is not None:
                (_ner_traces if isinstance(data, TracesData) else _ner_logs)(walk, data)
        except RedactionError:
            raise
        except RecursionError:
            raise RedactionError("message nested too deeply to redact") from None
        except Exception as exc:
            # The exception text may quote payload (e.g. a codec error): keep only its type.
            raise RedactionError(f"internal error while redacting ({type(exc).__name__})") from None
        return walk

    @staticmethod
    def _report(walk: MessageWalk) -> RedactionReport:
        report = RedactionReport.from_detector_counts(walk.total, walk.p.actions)
        if walk.total:
            record_redactions(report.by_detector())
        return report

    def _guarded_value(self, fn: Any, value: Any, project: str) -> tuple[Any, RedactionReport]:
        policy = self.policy_for(project)
        walk = MessageWalk(policy)
        try:
            out = fn(walk, value)
        except RedactionError:
            raise
        except Exception as exc:
            raise RedactionError(f"internal error while redacting ({type(exc).__name__})") from None
        return out, RedactionReport.from_detector_counts(walk.total, policy.actions)


def _walk_traces(walk: MessageWalk, data: TracesData) -> None:
    located = walk.p.prefilter is not None
    for rs in data.resource_spans:
        scopes = [(ss.scope, ss.spans) for ss in rs.scope_spans]
        if located:
            _walk_flagged_parts(walk, rs.resource, scopes, _span_parts, _span_fields)
        else:
            _walk_everything(walk, rs.resource, scopes, _span_fields)


def _walk_logs(walk: MessageWalk, data: LogsData) -> None:
    located = walk.p.prefilter is not None
    for rl in data.resource_logs:
        scopes = [(sl.scope, sl.log_records) for sl in rl.scope_logs]
        if located:
            _walk_flagged_parts(walk, rl.resource, scopes, _log_record_parts, _log_record_fields)
        else:
            _walk_everything(walk, rl.resource, scopes, _log_record_fields)


Items = list[tuple[Any, Any]]  # (scope, its spans or log records)
Fields = Callable[[MessageWalk, Any], None]  # walks a span's or log record's non-attribute strings
Parts = Callable[[bytes], tuple[bytes, list[bytes]]]  # serialised item -> its other fields, its attributes


def _walk_everything(walk: MessageWalk, resource: Any, scopes: Items, fields: Fields) -> None:
    """Without a prefilter (detectors without triggers, no Hyperscan): every string."""
    walk.attributes(resource.attributes)
    walk.flush(resource.attributes)
    for scope, items in scopes:
        walk.attributes(scope.attributes)
        walk.flush(scope.attributes)
        for item in items:
            fields(walk, item)
            walk.attributes(item.attributes)
            walk.dropped = False
            walk.flush(item.attributes)


def _span_parts(serialized: bytes) -> tuple[bytes, list[bytes]]:
    return span_without_attributes(serialized), span_attribute_bytes(serialized)


def _log_record_parts(serialized: bytes) -> tuple[bytes, list[bytes]]:
    return log_record_without_attributes(serialized), log_record_attribute_bytes(serialized)


def _walk_flagged_parts(
    walk: MessageWalk, resource: Any, scopes: Items, parts_of: Parts, fields: Fields
) -> None:
    """One located prefilter pass over everything a resource holds, then a walk of only
    the parts with a match.

    The parts are serialised by upb: the resource, each scope, and for each span (log
    record) its other fields (:func:`span_without_attributes`: name, events, links, status;
    body, event name) and each of its attributes. Attributes are parts of their own, so a
    match says which attribute needs a walk (and where in it, for its JSON documents), and
    no trigger matches across an attribute and the next one's field tag (an 8-digit
    model-name date followed by the tag ``J`` of the next attribute looked like a Spanish
    DNI to a pass over whole spans). A resource whose parts hold no match is not walked.
    """
    p = walk.p
    parts = [resource.SerializeToString()]
    scope_at: list[int] = []
    # per span (log record): it, the index of its other fields' part (its attributes
    # follow), its attributes' KeyValue bytes
    located: list[tuple[Any, int, list[bytes]]] = []
    for scope, items in scopes:
        scope_at.append(len(parts))
        parts.append(scope.SerializeToString())
        for item in items:
            others, attributes = parts_of(item.SerializeToString())
            located.append((item, len(parts), attributes))
            parts.append(others)
            parts += attributes
    unverified: set[int] = set()
    hits: dict[int, list[tuple[int, int]]] = {}
    # every part is an attribute's KeyValue but the resource, the scopes and the items' other fields
    not_keyvalues = {0, *scope_at, *(at for _, at, _ in located)}
    flagged = p.dirty_elements(parts, unverified, hits, not_keyvalues)
    if flagged is None:  # too many matches to locate: walk it all
        _walk_everything(walk, resource, scopes, fields)
        return
    if not flagged:
        return
    dirty = set(flagged)
    if 0 in dirty:
        walk.attributes(resource.attributes)
        walk.flush(resource.attributes)
    for (scope, _), at in zip(scopes, scope_at, strict=True):
        if at in dirty:
            walk.attributes(scope.attributes)
            walk.flush(scope.attributes)
    ordered = iter(flagged)
    index = next(ordered, None)
    for item, at, attributes in located:
        first = at + 1
        end = first + len(attributes)
        while index is not None and index < at:
            index = next(ordered, None)
        if index is None or index >= end:
            continue  # nothing flagged in this span (log record)
        fields_flagged = index == at
        only: list[int] = []
        while index is not None and index < end:
            if index >= first:
                only.append(index - first)
            index = next(ordered, None)
        if fields_flagged:
            fields(walk, item)
        if only:
            walk.attributes(
                item.attributes,
                only,
                {j for j in only if j + first in unverified},
                (attributes, {j: hits[j + first] for j in only if j + first in hits}),
            )
        walk.dropped = False
        walk.flush(item.attributes)


def _span_fields(walk: MessageWalk, span: Any) -> None:
    """The strings of a span outside its attributes: name, events, links, status."""
    text = walk.text
    new = text(span.name)
    if new is not None:
        span.name = new
    for event in span.events:
        new = text(event.name)
        if new is not None:
            event.name = new
        walk.attributes(event.attributes)
    for link in span.links:
        walk.attributes(link.attributes)
    if span.status.message:
        new = text(span.status.message)
        if new is not None:
            span.status.message = new


def _log_record_fields(walk: MessageWalk, record: Any) -> None:
    """The strings of a log record outside its attributes: body, event name."""
    if record.HasField("body"):
        walk.dropped = False
        walk.any_value(record.body, None)
        if walk.dropped:
            record.ClearField("body")
        walk.dropped = False
    if record.event_name:
        new = walk.text(record.event_name)
        if new is not None:
            record.event_name = new


def _ner_traces(walk: MessageWalk, data: TracesData) -> None:
    """The NER pass (after the regex walk): free-text attributes of spans and span events."""
    for rs in data.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                for event in span.events:
                    walk.ner_pass(event.attributes)
                walk.ner_pass(span.attributes)


def _ner_logs(walk: MessageWalk, data: LogsData) -> None:
    """The NER pass over log bodies and the free-text attributes of log records."""
    for rl in data.resource_logs:
        for sl in rl.scope_logs:
            for record in sl.log_records:
                walk.ner_pass(record.attributes, record.body if record.HasField("body") else None)
