"""An OpenAI client app instrumented with `opentelemetry-instrumentation-openai-v2`,
exporting its GenAI spans and events to spanline.

    python examples/openai_app.py --base-url http://127.0.0.1:8000/v1 --model gpt-4o-mini
    python examples/openai_app.py --base-url ... --protocol http   # OTLP/HTTP to :4318

Any OpenAI-compatible server works as `--base-url` (OpenAI itself, vLLM, llama.cpp,
Ollama's /v1, or the stub the tests use). The API key comes from `OPENAI_API_KEY`.

The instrumentation runs on the latest GenAI conventions with message content captured on
the span and as events (`span_and_event`), unless `OTEL_SEMCONV_STABILITY_OPT_IN` /
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` say otherwise. Content is what
spanline's redactor exists for: it masks secrets and personal data before anything is
stored. Spans go to the traces endpoint, events (log records) to the logs endpoint.
It prints the trace id of the call and the model's answer.

Needs `openai`, `opentelemetry-sdk`, `opentelemetry-instrumentation-openai-v2` and the
OTLP exporter package of the chosen protocol.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

DEFAULT_ENDPOINTS = {"grpc": "http://127.0.0.1:4317", "http": "http://127.0.0.1:4318"}


def make_exporters(protocol: str, endpoint: str, api_key: str | None) -> tuple[Any, Any]:
    """(span exporter, log exporter) for spanline ingest."""
    headers = {"authorization": f"Bearer {api_key}"} if api_key else None
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        insecure = endpoint.startswith("http://")
        return (
            OTLPSpanExporter(endpoint=endpoint, insecure=insecure, headers=headers),
            OTLPLogExporter(endpoint=endpoint, insecure=insecure, headers=headers),
        )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

    base = endpoint.rstrip("/")
    return (
        HttpSpanExporter(endpoint=f"{base}/v1/traces", headers=headers),
        HttpLogExporter(endpoint=f"{base}/v1/logs", headers=headers),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"))
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--prompt", default="Where is my order 1234? It should have arrived yesterday.")
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc", help="OTLP transport")
    parser.add_argument("--endpoint", help="spanline ingest (default http://127.0.0.1:4317 / :4318)")
    parser.add_argument("--api-key", help="spanline API key, sent as 'authorization: Bearer <key>'")
    args = parser.parse_args(argv)

    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_and_event")

    # Imported after the environment is set: the instrumentation reads it at import/instrument time.
    from openai import OpenAI
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    resource = Resource.create({"service.name": "example-openai-app"})
    span_exporter, log_exporter = make_exporters(
        args.protocol, args.endpoint or DEFAULT_ENDPOINTS[args.protocol], args.api_key
    )
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)

    client = OpenAI(base_url=args.base_url, api_key=os.environ.get("OPENAI_API_KEY", "unused"))
    tracer = tracer_provider.get_tracer("spanline.examples.openai_app")
    try:
        with tracer.start_as_current_span(
            "invoke_agent support-bot",
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support-bot"},
        ) as root:
            reply = client.chat.completions.create(
                model=args.model,
                messages=[
                    {"role": "system", "content": "You are a helpful support agent."},
                    {"role": "user", "content": args.prompt},
                ],
            )
            trace_id = format(root.get_span_context().trace_id, "032x")
    finally:
        client.close()
        OpenAIInstrumentor().uninstrument()
        tracer_provider.shutdown()  # flushes: returns once the exporter got its answer
        logger_provider.shutdown()
    print(trace_id)
    print(reply.choices[0].message.content)
    return 0


if __name__ == "__main__":
    sys.exit(main())
