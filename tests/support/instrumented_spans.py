"""Spans (and GenAI log events) exactly as real OpenAI instrumentations emit them.

Storage and redaction must handle three attribute dialects: the OTel official
instrumentation (``opentelemetry-instrumentation-openai-v2``, GenAI semconv), OpenLLMetry
(``opentelemetry-instrumentation-openai`` by Traceloop) and OpenInference
(``openinference-instrumentation-openai``, ``llm.*`` attributes). Rather than hand-writing
what we believe they emit, each driver here instruments the real ``openai`` client, runs
the same small conversation against :class:`OpenAIStub`, and returns what the SDK
captured, encoded by the SDK's own OTLP encoder.

Instrumentations patch the ``openai`` module globally, so every driver instruments with a
private TracerProvider/LoggerProvider, sets its environment only for the duration of the
run, and uninstruments in ``finally`` (then strips any wrapper an instrumentation failed to
remove): the three can run one after another in one process.

The conversation: a tool-offering chat whose user prompt carries :data:`PLANTED_EMAIL`
and :data:`PLANTED_CARD` (the stub answers with a tool call), the follow-up chat with the
tool result (text answer), and a streamed chat with ``include_usage``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import wrapt
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.openai_stub import OpenAIStub

PLANTED_EMAIL = "maria.schmidt+orders@example.com"
PLANTED_CARD = "4111 1111 1111 1111"
PLANTED_PII: tuple[str, ...] = (PLANTED_EMAIL, PLANTED_CARD)
MODEL = "gpt-4o-mini"

_TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Find an order by customer email.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
                "required": ["query"],
            },
        },
    }
]
_SYSTEM = "You are a support agent for an online store. Verify the order before answering."
_USER = (
    f"Hi, my order has not arrived. My email is {PLANTED_EMAIL} and I paid with card "
    f"{PLANTED_CARD}. Can you check where it is?"
)


@dataclass
class InstrumentedCapture:
    """What one instrumentation emitted for the standard conversation."""

    instrumentation: str
    package: str
    package_version: str
    traces: TracesData
    logs: LogsData
    planted: tuple[str, ...] = PLANTED_PII
    span_names: list[str] = field(default_factory=list)
    # wrappers its uninstrument() left on openai classes (removed by strip_openai_wrappers)
    leaked_wrappers: int = 0

    def spans(self) -> list[Any]:
        return [s for rs in self.traces.resource_spans for ss in rs.scope_spans for s in ss.spans]

    def log_records(self) -> list[Any]:
        return [r for rl in self.logs.resource_logs for sl in rl.scope_logs for r in sl.log_records]


def strip_openai_wrappers() -> int:
    """Remove every wrapt wrapper left on ``openai`` classes; return how many were removed.

    ``uninstrument()`` is not enough: OpenLLMetry 0.62's ``_uninstrument`` passes
    ``("openai.resources.chat.completions", "Completions.create")`` to
    ``opentelemetry.instrumentation.utils.unwrap``, which resolves that to the module and
    finds no attribute ``"Completions.create"``, so its wrappers stay and keep emitting
    into a shut-down provider. ``openai`` itself uses no wrapt proxies, so anything wrapt
    left on its classes came from an instrumentation.
    """
    removed = 0
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "openai" or name.startswith("openai.")):
            continue
        for obj in list(vars(module).values()):
            if not isinstance(obj, type) or obj.__module__ != name:
                continue
            for attr, value in list(vars(obj).items()):
                original = value
                while isinstance(original, wrapt.BaseObjectProxy):
                    original = original.__wrapped__
                if original is not value:
                    setattr(obj, attr, original)
                    removed += 1
    return removed


@contextmanager
def _env(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def run_conversation(base_url: str) -> None:
    """The standard conversation through the real ``openai`` client."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key="sk-test-not-a-real-key", max_retries=0, timeout=10)
    try:
        messages: list[Any] = [
            {"role": "system", "content": _SYSTEM},
            {"role": "user", "content": _USER},
        ]
        first = client.chat.completions.create(
            model=MODEL, messages=messages, tools=_TOOLS, temperature=0.2, max_tokens=256
        )
        call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        result = {"order": "A-1042", "status": "in transit", "contact": PLANTED_EMAIL}
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
        client.chat.completions.create(model=MODEL, messages=messages, tools=_TOOLS, temperature=0.2)
        stream = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Summarise that in one sentence, please."}],
            stream=True,
            stream_options={"include_usage": True},
        )
        for _ in stream:
            pass
    finally:
        client.close()


def _capture(
    name: str,
    package: str,
    make_instrumentor: Callable[[], Any],
    env: Mapping[str, str],
    stub: OpenAIStub | None,
    instrument_kwargs: Mapping[str, Any] | None = None,
) -> InstrumentedCapture:
    spans_out = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": f"shape-{name}"}))
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans_out))
    logs_out = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=Resource.create({"service.name": f"shape-{name}"}))
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs_out))

    leaked = 0
    own_stub = stub is None
    server = OpenAIStub().start() if stub is None else stub
    try:
        with _env(env):
            instrumentor = make_instrumentor()
            instrumentor.instrument(
                tracer_provider=tracer_provider,
                logger_provider=logger_provider,
                **(instrument_kwargs or {}),
            )
            try:
                if not instrumentor.is_instrumented_by_opentelemetry:
                    raise RuntimeError(f"{package} refused to instrument (dependency check?)")
                run_conversation(server.base_url)
            finally:
                instrumentor.uninstrument()
                leaked = strip_openai_wrappers()
    finally:
        if own_stub:
            server.stop()
        tracer_provider.force_flush()
        logger_provider.force_flush()

    finished = spans_out.get_finished_spans()
    traces = TracesData(resource_spans=encode_spans(finished).resource_spans)
    logs = LogsData(resource_logs=encode_logs(logs_out.get_finished_logs()).resource_logs)
    tracer_provider.shutdown()
    logger_provider.shutdown()
    return InstrumentedCapture(
        instrumentation=name,
        package=package,
        package_version=version(package),
        traces=traces,
        logs=logs,
        span_names=[s.name for s in finished],
        leaked_wrappers=leaked,
    )


def capture_openai_v2(stub: OpenAIStub | None = None) -> InstrumentedCapture:
    """OTel official instrumentation; content on the span and as a GenAI event (log)."""
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    env = {
        "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_and_event",
    }
    return _capture("openai-v2", "opentelemetry-instrumentation-openai-v2", OpenAIInstrumentor, env, stub)


def capture_openllmetry(stub: OpenAIStub | None = None) -> InstrumentedCapture:
    """Traceloop's OpenLLMetry instrumentation with content tracing on (its default)."""
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    env = {"TRACELOOP_TRACE_CONTENT": "true"}
    return _capture("openllmetry", "opentelemetry-instrumentation-openai", OpenAIInstrumentor, env, stub)


def capture_openinference(stub: OpenAIStub | None = None) -> InstrumentedCapture:
    """Arize OpenInference instrumentation (``llm.*`` / ``input.value`` attributes)."""
    from openinference.instrumentation.openai import OpenAIInstrumentor

    env = {"OPENINFERENCE_HIDE_INPUTS": "false", "OPENINFERENCE_HIDE_OUTPUTS": "false"}
    return _capture("openinference", "openinference-instrumentation-openai", OpenAIInstrumentor, env, stub)


DRIVERS: dict[str, Callable[[OpenAIStub | None], InstrumentedCapture]] = {
    "openai-v2": capture_openai_v2,
    "openllmetry": capture_openllmetry,
    "openinference": capture_openinference,
}


def capture_all(stub: OpenAIStub | None = None) -> dict[str, InstrumentedCapture]:
    """All three, sequentially, in this process."""
    return {name: driver(stub) for name, driver in DRIVERS.items()}
