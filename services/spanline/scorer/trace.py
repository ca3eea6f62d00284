"""The view of one completed trace that every scorer reads (heuristics and the judge).

Built from the span model (:mod:`spanline.spans`): the typed GenAI fields are the ones the
writer stores, so a score and the row it is about always agree on tokens, cost, model and
payloads. Nothing in here parses an OTLP convention itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

CloseReason = Literal["complete", "no_root", "max_age", "evicted", "oversized", "revoked"]
CLOSE_REASONS: tuple[CloseReason, ...] = ("complete", "no_root", "max_age", "evicted", "oversized", "revoked")


@dataclass(slots=True, frozen=True)
class SpanView:
    """One span's fields as the ``spans`` table holds them (ids as raw bytes)."""

    span_id: bytes
    parent_span_id: bytes
    name: str
    kind: str
    start_ns: int
    end_ns: int
    duration_ns: int
    status_code: str  # UNSET | OK | ERROR
    status_message: str
    operation: str = ""
    provider: str = ""
    request_model: str = ""
    response_model: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None
    ttft_ms: float | None = None
    finish_reasons: tuple[str, ...] = ()
    conversation_id: str = ""
    user_id: str = ""
    agent_name: str = ""
    tool_name: str = ""
    tool_call_id: str = ""
    # payload columns: JSON text (or a claim-check reference ``spanline-ref:...``)
    input_messages: str = ""
    output_messages: str = ""
    system_instructions: str = ""
    tool_arguments: str = ""
    tool_result: str = ""
    # attributes the typed columns did not take, as text (the ``attributes`` map)
    attributes: Mapping[str, str] = field(default_factory=dict)
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    events: str = ""  # JSON list of span events (name, time, attributes), "" when none

    @property
    def model(self) -> str:
        return self.response_model or self.request_model

    @property
    def is_root(self) -> bool:
        return not self.parent_span_id


@dataclass(slots=True, frozen=True)
class LogView:
    """One log record of the trace (GenAI content events arrive as logs)."""

    span_id: bytes
    time_ns: int
    event_name: str
    severity_text: str
    body: str  # text, or JSON for structured bodies
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class CompletedTrace:
    """A closed trace window: what the scorers see, and how it was closed.

    ``late_fragment`` is true when these spans arrived after their trace was already decided
    (the view then holds only the late spans). ``scores`` holds the deterministic score values
    by name once the heuristics ran; the judge reads them (tail strata) but never writes them.
    """

    project_id: str
    trace_id: bytes
    spans: list[SpanView]
    logs: list[LogView]
    root: SpanView | None
    route: str
    model: str
    environment: str
    close_reason: CloseReason
    late_fragment: bool = False
    scores: dict[str, float] = field(default_factory=dict)
    partition: int = 0
    size_bytes: int = 0

    @property
    def complete(self) -> bool:
        return closed_by_rule(self.close_reason)

    @property
    def trace_id_hex(self) -> str:
        return self.trace_id.hex()

    @property
    def score_span_id(self) -> bytes:
        return score_span_id(
            self.root.span_id if self.root is not None else None, (s.span_id for s in self.spans)
        )


def closed_by_rule(reason: CloseReason) -> bool:
    """True when a trace closed by its completion rule (not forced by a bound)."""
    return reason in ("complete", "no_root")


def score_span_id(root_span_id: bytes | None, span_ids: Iterable[bytes]) -> bytes:
    """The span a trace-level score is attached to: the root, else the lowest span id
    (a late fragment or a rootless trace), so a replay picks the same one."""
    if root_span_id is not None:
        return root_span_id
    return min(span_ids, default=b"")
