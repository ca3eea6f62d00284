"""Kafka message values -> Arrow tables matching the ClickHouse schema (migrations/).

The writer batches many messages into one insert, so each table has a *buffer*: ``add``
turns one message into rows and appends them only if the whole message converted, so a
bad message raises :class:`RowBuildError` (the service sends it to the DLQ) and leaves the
batch intact. ``take()`` builds one Arrow table for the batch; building per message would
cost more than the insert itself.

Large payload fields go through the claim check (``PayloadOffloader``) while rows are
built; an :class:`~spanline.spans.object_store.ObjectStoreError` there is an
infrastructure failure (retry/pause), not a bad message.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Any, ClassVar, Generic, TypeVar

import pyarrow as pa
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from spanline.spans.attributes import attributes_dict, to_text
from spanline.spans.log_events import event_parts, event_time_ns
from spanline.spans.metrics import ROWS_REJECTED
from spanline.spans.object_store import PayloadOffloader
from spanline.spans.pricing import PricingTable
from spanline.spans.row_errors import TIME_NS_MAX, RowBuildError, time_ns
from spanline.spans.row_errors import hex_id as _hex_id
from spanline.spans.score_records import is_score_set, unpack_scores
from spanline.spans.span_build import (
    COMPILED_AVAILABLE,
    MAP,
    SPAN_COLUMNS,
    STR,
    TS,
    CompiledSpanBuilder,
    SpanBuilder,
    compiled_module,
    wire_arrays,
)
from spanline.v1.spanline_pb2 import AlertEvent, AuditCount, Score

__all__ = [
    "SPAN_COLUMNS",
    "AlertRows",
    "AuditRows",
    "LogRows",
    "RowBuildError",
    "ScoreRows",
    "SpanRows",
    "alerts_rows",
    "audit_rows",
    "logs_rows",
    "scores_rows",
    "spans_rows",
]

_ALERT_STATES = {0: "UNSPECIFIED", 1: "FIRING", 2: "RESOLVED"}


def _parse(message: Message, value: bytes, table: str) -> None:
    try:
        message.ParseFromString(value)
    except (DecodeError, ValueError) as exc:
        raise RowBuildError(table, f"not a valid {type(message).__name__} protobuf: {exc}") from None


Rows = list[tuple[Any, ...]]
# per MAP column index: flat keys and values of every row's map, in row order
FlatMaps = dict[int, tuple[list[str], list[str]]]


_MALFORMED = (TypeError, ValueError, KeyError, IndexError, UnicodeError, OverflowError)


class _Rejects:
    """``with``-block around turning one message into rows: a message that cannot become rows
    is counted once and leaves as :class:`RowBuildError` (the service dead-letters it), since a
    malformed message must never stop the batch. Anything else (object store, memory) passes."""

    def __init__(self, table: str) -> None:
        self.table = table
        self._rejected = ROWS_REJECTED.labels(table=table)

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if kind is None:
            return
        if issubclass(kind, RowBuildError):
            self._rejected.inc()
        elif issubclass(kind, _MALFORMED):
            self._rejected.inc()
            raise RowBuildError(self.table, f"{kind.__name__}: {exc}") from None


class _TableBuffer:
    """What every table's batch shares: its Arrow schema, one rule for messages that cannot
    become rows (:class:`_Rejects`), and ``take()`` with the cyclic GC paused."""

    table: ClassVar[str]
    columns: ClassVar[Sequence[tuple[str, pa.DataType]]]
    approx_bytes: int

    def __init__(self) -> None:
        self._rejects = _Rejects(self.table)
        self.clear()

    def __len__(self) -> int:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError

    def _to_arrow(self) -> pa.Table:
        raise NotImplementedError

    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(name, typ) for name, typ in self.columns])

    def _take_arrow(self) -> pa.Table:
        """What :meth:`take` converts: :meth:`_to_arrow` unless the buffer can hand its own
        memory to the table (the compiled span builder) since it is cleared right after."""
        return self._to_arrow()

    def to_arrow(self) -> pa.Table:
        return self._converted(self._to_arrow)

    def _converted(self, convert: Callable[[], pa.Table]) -> pa.Table:
        if not len(self):
            return self.schema().empty_table()
        # Conversion allocates no reference cycles; pausing the cyclic GC keeps it from
        # rescanning the whole batch of rows over and over (measured: 2-4x faster take()).
        paused = gc.isenabled()
        gc.disable()
        try:
            return convert()
        finally:
            if paused:
                gc.enable()

    def take(self) -> pa.Table:
        """The batch as one Arrow table; the buffer is empty afterwards."""
        table = self._converted(self._take_arrow)
        self.clear()
        return table


class _Buffer(_TableBuffer):
    """Rows as tuples of plain values, converted to Arrow once per batch.

    Map cells are kept flat (one keys list and one values list per map column; the row
    holds only its entry count): far fewer Python containers per row keeps the cyclic GC
    and the Arrow conversion cheap at tens of thousands of rows per second.
    """

    def __init__(self) -> None:
        self._map_cols = [i for i, (_, typ) in enumerate(self.columns) if typ == MAP]
        super().__init__()

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        self._rows: Rows = []
        self._maps: FlatMaps = {i: ([], []) for i in self._map_cols}
        self.approx_bytes = 0

    def _guard(self, build: Callable[[], tuple[Rows, FlatMaps]], nbytes: int) -> int:
        """Run one message's build; append its rows only if all of them converted."""
        with self._rejects:
            rows, maps = build()
        self._rows.extend(rows)
        for i, (keys, values) in maps.items():
            own_keys, own_values = self._maps[i]
            own_keys.extend(keys)
            own_values.extend(values)
        self.approx_bytes += nbytes
        return len(rows)

    def _flatten(self, rows: Rows) -> tuple[Rows, FlatMaps]:
        """Rows whose map cells are (key, value) lists -> entry counts plus flat maps."""
        maps: FlatMaps = {i: ([], []) for i in self._map_cols}
        out: Rows = []
        for row in rows:
            cells = list(row)
            for i in self._map_cols:
                pairs = cells[i]
                keys, values = maps[i]
                keys.extend(k for k, _ in pairs)
                values.extend(v for _, v in pairs)
                cells[i] = len(pairs)
            out.append(tuple(cells))
        return out, maps

    def _to_arrow(self) -> pa.Table:
        cols = list(zip(*self._rows, strict=True))
        arrays = []
        for i, (_, typ) in enumerate(self.columns):
            if typ == MAP:
                keys, values = self._maps[i]
                offsets = pa.array([0, *accumulate(cols[i])], type=pa.int32())
                arrays.append(pa.MapArray.from_arrays(offsets, pa.array(keys, STR), pa.array(values, STR)))
            else:
                arrays.append(pa.array(cols[i], type=typ))
        return pa.Table.from_arrays(arrays, names=[name for name, _ in self.columns])


def _extend_map(keys: list[str], values: list[str], attrs: dict[str, Any]) -> int:
    for key, value in attrs.items():
        keys.append(key)
        values.append(value if type(value) is str else to_text(value))
    return len(attrs)


class _Inline:
    """Offloader stand-in when no object store is configured: payloads always stay inline."""

    @staticmethod
    def offload(text: str) -> tuple[str, int]:
        return text, len(text.encode("utf-8")) if text else 0


class SpanRows(_TableBuffer):
    """Rows of ``spans`` from OTLP ``TracesData`` messages (signal ``traces``).

    Same interface as the other buffers; the rows live column by column in a
    :class:`~spanline.spans.span_build.SpanBuilder` (the hot path of the writer).
    """

    table = "spans"
    columns = SPAN_COLUMNS

    def __init__(
        self, pricing: PricingTable, offloader: PayloadOffloader | None = None, builder: str = "auto"
    ) -> None:
        """``builder``: ``compiled``, ``python`` or ``auto`` (compiled when it is built)."""
        self.pricing = pricing
        self.offloader: PayloadOffloader | _Inline = offloader if offloader is not None else _Inline()
        if builder == "compiled" or (builder == "auto" and COMPILED_AVAILABLE):
            threshold = offloader.threshold_bytes if offloader is not None else None
            self._builder: SpanBuilder | CompiledSpanBuilder = CompiledSpanBuilder(
                pricing, self.offloader.offload, threshold
            )
        elif builder in ("auto", "python"):
            self._builder = SpanBuilder(pricing, self.offloader.offload)
        else:
            raise ValueError(f"unknown span builder {builder!r} (auto, compiled, python)")
        super().__init__()

    @property
    def builder_name(self) -> str:
        return "compiled" if isinstance(self._builder, CompiledSpanBuilder) else "python"

    def __len__(self) -> int:
        return len(self._builder)

    def clear(self) -> None:
        self._builder.clear()
        self.approx_bytes = 0

    def add_bytes(self, value: bytes, project_id: str, received_at_ns: int) -> int:
        """Parse one ``spanline.redacted`` traces value and add its spans; returns rows added."""
        with self._rejects:
            added = self._builder.add(value, project_id, received_at_ns)
        self.approx_bytes += len(value)
        return added

    def add(self, traces: TracesData, project_id: str, received_at_ns: int) -> int:
        return self.add_bytes(traces.SerializeToString(), project_id, received_at_ns)

    def _to_arrow(self) -> pa.Table:
        return self._builder.to_arrow()

    def _take_arrow(self) -> pa.Table:
        return self._builder.take()

    def warm_up(self) -> None:
        """Build one throw-away row so one-time costs are paid at start-up, not by the first batch.

        The first Arrow conversion imports pandas through pyarrow (~0.25 s on these machines),
        which otherwise delays the first batch of a fresh writer and its freshness.
        """
        traces = TracesData()
        traces.resource_spans.add().scope_spans.add().spans.add(
            trace_id=b"\x01" * 16,
            span_id=b"\x01" * 8,
            name="warm-up",
            start_time_unix_nano=1,
            end_time_unix_nano=2,
        )
        self.add(traces, "warm-up", 1)
        self.take()


LOG_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("project_id", STR),
    ("time", TS),
    ("observed_time", TS),
    ("trace_id", STR),
    ("span_id", STR),
    ("record_id", pa.uint64()),
    ("severity_number", pa.uint8()),
    ("severity_text", STR),
    ("event_name", STR),
    ("service_name", STR),
    ("scope_name", STR),
    ("body", STR),
    ("body_bytes", pa.uint64()),
    ("attributes", MAP),
    ("resource_attributes", MAP),
    ("ingested_at", TS),
)


_LOG_ATTRS = [name for name, _ in LOG_COLUMNS].index("attributes")
_LOG_RES = [name for name, _ in LOG_COLUMNS].index("resource_attributes")


class LogRows(_Buffer):
    """Rows of ``logs`` from OTLP ``LogsData`` (GenAI events carry message content here).

    An event with an empty body and content attributes (``gen_ai.input.messages``...) gets
    those attributes as a JSON object in ``body`` (claim-checked like span payloads) and
    not in the map.
    """

    table = "logs"
    columns = LOG_COLUMNS

    def __init__(self, offloader: PayloadOffloader | None = None) -> None:
        super().__init__()
        self.offloader: PayloadOffloader | _Inline = offloader if offloader is not None else _Inline()

    def add_bytes(self, value: bytes, project_id: str, received_at_ns: int) -> int:
        logs = LogsData()
        with self._rejects:
            _parse(logs, value, self.table)
        return self._guard(lambda: self._build(logs, project_id, received_at_ns), len(value))

    def add(self, logs: LogsData, project_id: str, received_at_ns: int) -> int:
        return self._guard(lambda: self._build(logs, project_id, received_at_ns), logs.ByteSize())

    def _build(self, logs: LogsData, project_id: str, received_at_ns: int) -> tuple[Rows, FlatMaps]:
        if not project_id:
            raise RowBuildError(self.table, "project id is empty")
        rows: Rows = []
        attr_keys: list[str] = []
        attr_values: list[str] = []
        res_keys: list[str] = []
        res_values: list[str] = []
        for rl in logs.resource_logs:
            res_attrs = attributes_dict(rl.resource.attributes)
            service = to_text(res_attrs.get("service.name", ""))
            for sl in rl.scope_logs:
                for rec in sl.log_records:
                    time = time_ns(event_time_ns(rec) or received_at_ns, "time", self.table)
                    observed = time_ns(rec.observed_time_unix_nano or time, "observed time", self.table)
                    event_name, body, attrs = event_parts(rec)
                    body, body_len = self.offloader.offload(body)
                    # replays carry identical bytes: the record's own hash is its identity
                    digest = hashlib.blake2b(rec.SerializeToString(deterministic=True), digest_size=8)
                    digest.update(service.encode("utf-8"))
                    rows.append(
                        (
                            project_id,
                            time,
                            observed,
                            _hex_id(rec.trace_id, 16, "trace_id", self.table, required=False),
                            _hex_id(rec.span_id, 8, "span_id", self.table, required=False),
                            int.from_bytes(digest.digest(), "little"),
                            min(max(rec.severity_number, 0), 255),
                            rec.severity_text,
                            event_name,
                            service,
                            sl.scope.name,
                            body,
                            body_len,
                            _extend_map(attr_keys, attr_values, attrs),
                            _extend_map(res_keys, res_values, res_attrs),
                            received_at_ns,
                        )
                    )
        return rows, {_LOG_ATTRS: (attr_keys, attr_values), _LOG_RES: (res_keys, res_values)}


M = TypeVar("M", Score, AlertEvent, AuditCount)


class _ProtoRows(_Buffer, Generic[M]):
    """Rows from one spanline protobuf message each (scores, alerts, audit).

    ``message_id`` (the source ``topic/partition/offset``) is only part of the identity
    where a message has no id of its own (audit); the others ignore it.
    """

    message_type: ClassVar[type[Message]]

    def add_bytes(self, value: bytes, project_id: str, received_at_ns: int, message_id: str = "") -> int:
        # The common case without the general path's wrappers (a score is a few hundred
        # bytes and the writer and coldtier each read ~9 a trace); any problem goes the
        # general way, which counts and words the rejection.
        message = self.message_type()
        try:
            message.ParseFromString(value)
            row = self._row(message, project_id, received_at_ns, message_id)  # type: ignore[arg-type]
        except Exception:
            return self._add_bytes_checked(value, project_id, received_at_ns, message_id)
        cells = list(row)
        for i in self._map_cols:
            pairs = cells[i]
            if pairs:
                keys, values = self._maps[i]
                for k, v in pairs:
                    keys.append(k)
                    values.append(v)
            cells[i] = len(pairs)
        self._rows.append(tuple(cells))
        self.approx_bytes += len(value)
        return 1

    def _add_bytes_checked(self, value: bytes, project_id: str, received_at_ns: int, message_id: str) -> int:
        message = self.message_type()
        with self._rejects:
            _parse(message, value, self.table)
        return self.add(message, project_id, received_at_ns, message_id)  # type: ignore[arg-type]

    def add(self, message: M, project_id: str, received_at_ns: int, message_id: str = "") -> int:
        build = lambda: self._flatten([self._row(message, project_id, received_at_ns, message_id)])  # noqa: E731
        return self._guard(build, message.ByteSize())

    def _project(self, own: str, default: str) -> str:
        project = own or default
        if not project:
            raise RowBuildError(self.table, "project id is empty")
        return project

    def _row(self, message: M, project_id: str, received_at_ns: int, message_id: str) -> tuple[Any, ...]:
        raise NotImplementedError


SCORE_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("project_id", STR),
    ("score_id", STR),
    ("trace_id", STR),
    ("span_id", STR),
    ("name", STR),
    ("score_value", pa.float64()),
    ("score_label", STR),
    ("explanation", STR),
    ("evaluator_kind", STR),
    ("sampling_reason", STR),
    ("sampling_weight", pa.float64()),
    ("time", TS),
    ("attributes", MAP),
    ("ingested_at", TS),
)


class ScoreRows(_ProtoRows[Score]):
    """Rows of ``scores`` from ``spanline.v1.Score`` messages.

    Record values go through the compiled score reader when it is built (``wire_spans``:
    the writer and the coldtier read ~9 scores a trace, and a score through protobuf objects
    and Python rows cost more than a span); a value outside its fast subset, and every
    problem, goes the Python way below, which accepts it or words the rejection.
    """

    table = "scores"
    columns = SCORE_COLUMNS
    message_type = Score

    def __init__(self, builder: str = "auto") -> None:
        """``builder``: ``compiled``, ``python`` or ``auto`` (compiled when it is built)."""
        if builder not in ("auto", "compiled", "python"):
            raise ValueError(f"unknown score builder {builder!r} (auto, compiled, python)")
        if builder == "compiled" and not COMPILED_AVAILABLE:
            raise RuntimeError("spanline.spans.wire_spans is not built (make, or pip install -e .)")
        self._wire: Any = None
        if builder != "python" and COMPILED_AVAILABLE:
            self._wire = compiled_module().WireScores(time_max=TIME_NS_MAX)
        super().__init__()

    def __len__(self) -> int:
        return len(self._rows) + (len(self._wire) if self._wire is not None else 0)

    def clear(self) -> None:
        super().clear()
        if self._wire is not None:
            self._wire.clear()

    def add_bytes(self, value: bytes, project_id: str, received_at_ns: int, message_id: str = "") -> int:
        """A single ``Score`` or a trace's ``ScoreSet`` (spans/score_records.py); a set's rows
        are added all or none, like the spans of one message."""
        if self._wire is not None:
            added: int = self._wire.add(value, project_id, received_at_ns)
            if added >= 0:
                self.approx_bytes += len(value)
                return added
        if not is_score_set(value):
            return super().add_bytes(value, project_id, received_at_ns, message_id)

        def build() -> tuple[Rows, FlatMaps]:
            try:
                scores = unpack_scores(value)
            except (DecodeError, ValueError) as exc:
                raise RowBuildError(self.table, f"not a valid ScoreSet protobuf: {exc}") from None
            return self._flatten([self._row(s, project_id, received_at_ns, message_id) for s in scores])

        return self._guard(build, len(value))

    def to_arrow(self) -> pa.Table:
        return self._converted(lambda: self._arrow(hand_over=False))

    def _take_arrow(self) -> pa.Table:
        return self._arrow(hand_over=True)

    def _arrow(self, *, hand_over: bool) -> pa.Table:
        tables = []
        wire = self._wire
        if wire is not None and len(wire):
            n = len(wire)
            arrays = wire_arrays(wire.buffers(hand_over=hand_over), n, _SCORE_NAMES)
            columns = [arrays[i] for i in range(len(_SCORE_NAMES))]
            tables.append(pa.Table.from_arrays(columns, schema=self.schema()))
        if self._rows or not tables:
            tables.append(self._to_arrow())
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)

    def _row(self, s: Score, project_id: str, received_at_ns: int, message_id: str) -> tuple[Any, ...]:
        project = self._project(s.project_id, project_id)
        if not s.score_id:
            raise RowBuildError(self.table, "score_id is empty")
        return (
            project,
            s.score_id,
            _hex_id(s.trace_id, 16, "trace_id", self.table, required=True),
            _hex_id(s.span_id, 8, "span_id", self.table, required=False),
            s.name,
            s.score_value,
            s.score_label,
            s.explanation,
            s.evaluator_kind,
            s.sampling_reason,
            s.sampling_weight,
            time_ns(s.time_unix_nano or received_at_ns, "time", self.table),
            sorted(s.attributes.items()),
            received_at_ns,
        )


_SCORE_NAMES = [name for name, _ in SCORE_COLUMNS]
if COMPILED_AVAILABLE and {
    *compiled_module().SCORE_STRING_COLUMNS,
    *(name for name, _ in compiled_module().SCORE_NUMBER_COLUMNS),
    "attributes",
} != set(_SCORE_NAMES):
    raise ImportError("spanline.spans.wire_spans does not match SCORE_COLUMNS; rebuild it (make)")


ALERT_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("project_id", STR),
    ("time", TS),
    ("fingerprint", STR),
    ("rule", STR),
    ("state", STR),
    ("severity", STR),
    ("summary", STR),
    ("value", pa.float64()),
    ("threshold", pa.float64()),
    ("labels", MAP),
    ("ingested_at", TS),
)


class AlertRows(_ProtoRows[AlertEvent]):
    """Rows of ``alerts`` from ``spanline.v1.AlertEvent`` state changes."""

    table = "alerts"
    columns = ALERT_COLUMNS
    message_type = AlertEvent

    def _row(self, a: AlertEvent, project_id: str, received_at_ns: int, message_id: str) -> tuple[Any, ...]:
        project = self._project(a.project_id, project_id)
        if not a.fingerprint:
            raise RowBuildError(self.table, "fingerprint is empty")
        return (
            project,
            time_ns(a.time_unix_nano or received_at_ns, "time", self.table),
            a.fingerprint,
            a.rule,
            _ALERT_STATES.get(a.state, str(a.state)),
            a.severity,
            a.summary,
            a.value,
            a.threshold,
            sorted(a.labels.items()),
            received_at_ns,
        )


AUDIT_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("project_id", STR),
    ("window_start", TS),
    ("window_end", TS),
    ("detector", STR),
    ("action", STR),
    ("signal", STR),
    ("count", pa.uint64()),
    ("message_id", STR),
    ("ingested_at", TS),
)


class AuditRows(_ProtoRows[AuditCount]):
    """Rows of ``audit`` from ``spanline.v1.AuditCount``.

    ``message_id`` (for example ``"<topic>/<partition>/<offset>"``) is part of the identity:
    replays of one message collapse, while two redactor replicas reporting the same window
    stay two rows.
    """

    table = "audit"
    columns = AUDIT_COLUMNS
    message_type = AuditCount

    def _row(self, c: AuditCount, project_id: str, received_at_ns: int, message_id: str) -> tuple[Any, ...]:
        project = self._project(c.project_id, project_id)
        if not c.detector:
            raise RowBuildError(self.table, "detector is empty")
        start = time_ns(c.window_start_unix_nano or received_at_ns, "window start", self.table)
        return (
            project,
            start,
            time_ns(max(c.window_end_unix_nano, start), "window end", self.table),
            c.detector,
            c.action,
            c.signal,
            c.count,
            message_id,
            received_at_ns,
        )


def spans_rows(
    traces: TracesData,
    project_id: str,
    received_at_ns: int,
    *,
    pricing: PricingTable | None = None,
    offloader: PayloadOffloader | None = None,
) -> pa.Table:
    """One message's spans as an Arrow table (convenience; the service batches with SpanRows)."""
    buf = SpanRows(pricing or PricingTable.load(), offloader)
    buf.add(traces, project_id, received_at_ns)
    return buf.take()


def logs_rows(
    logs: LogsData, project_id: str, received_at_ns: int, *, offloader: PayloadOffloader | None = None
) -> pa.Table:
    buf = LogRows(offloader)
    buf.add(logs, project_id, received_at_ns)
    return buf.take()


def scores_rows(scores: Sequence[Score], project_id: str, received_at_ns: int) -> pa.Table:
    buf = ScoreRows()
    for s in scores:
        buf.add(s, project_id, received_at_ns)
    return buf.take()


def alerts_rows(events: Sequence[AlertEvent], project_id: str, received_at_ns: int) -> pa.Table:
    buf = AlertRows()
    for e in events:
        buf.add(e, project_id, received_at_ns)
    return buf.take()


def audit_rows(
    counts: Sequence[AuditCount], project_id: str, received_at_ns: int, message_id: str = ""
) -> pa.Table:
    buf = AuditRows()
    for i, c in enumerate(counts):
        buf.add(c, project_id, received_at_ns, f"{message_id}#{i}" if len(counts) > 1 else message_id)
    return buf.take()
