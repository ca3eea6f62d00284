"""A minimal app that sends one GenAI agent trace to spanline with the OpenTelemetry SDK.

    python examples/send_traces.py                      # OTLP/gRPC to 127.0.0.1:4317
    python examples/send_traces.py --protocol http      # OTLP/HTTP (protobuf) to 127.0.0.1:4318
    python examples/send_traces.py --api-key "$KEY"     # when ingest.api_keys is set

The spans follow the OpenTelemetry GenAI semantic conventions (an `invoke_agent` root, a
`chat` call and an `execute_tool` call), so the writer fills its typed columns. It prints
the trace id of every trace it sent, one per line, then exits once the exporter has
delivered them (the SDK retries while spanline answers UNAVAILABLE / 503).

Needs `opentelemetry-sdk` plus `opentelemetry-exporter-otlp-proto-grpc` or
`opentelemetry-exporter-otlp-proto-http`.
"""

from __future__ import annotations

import argparse
import sys

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

DEFAULT_ENDPOINTS = {"grpc": "http://127.0.0.1:4317", "http": "http://127.0.0.1:4318"}


def make_exporter(protocol: str, endpoint: str, api_key: str | None) -> SpanExporter:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else None
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"), headers=headers)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    # The HTTP exporter takes the full URL of the signal's path.
    return HttpExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", headers=headers)


class DeliveryCheck(SpanExporter):
    """Wraps an exporter to remember whether every batch was acknowledged: spanline
    acknowledges only what Kafka stored, so a success here means the spans are safe."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.failed_batches = 0

    def export(self, spans):  # type: ignore[no-untyped-def]
        result = self.inner.export(spans)
        if result is not SpanExportResult.SUCCESS:
            self.failed_batches += 1
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


def send(provider: TracerProvider, traces: int) -> list[str]:
    tracer = provider.get_tracer("spanline.examples.send_traces", "1.0")
    sent = []
    for i in range(traces):
        with tracer.start_as_current_span(
            "invoke_agent support-bot",
            kind=SpanKind.INTERNAL,
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support-bot"},
        ) as root:
            with tracer.start_as_current_span(
                "chat gpt-4o-mini",
                kind=SpanKind.CLIENT,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                    "gen_ai.usage.input_tokens": 120 + i,
                    "gen_ai.usage.output_tokens": 40,
                    "gen_ai.response.finish_reasons": ["tool_calls"],
                },
            ):
                pass
            with tracer.start_as_current_span(
                "execute_tool lookup_order",
                attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"},
            ) as tool:
                if i % 2:
                    tool.set_status(Status(StatusCode.ERROR, "order service timed out"))
            sent.append(format(root.get_span_context().trace_id, "032x"))
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc", help="OTLP transport")
    parser.add_argument("--endpoint", help="spanline ingest (default http://127.0.0.1:4317 / :4318)")
    parser.add_argument("--api-key", help="sent as 'authorization: Bearer <key>'")
    parser.add_argument("--traces", type=int, default=1, help="how many traces to send")
    parser.add_argument("--service-name", default="example-agent", help="resource service.name")
    args = parser.parse_args(argv)

    endpoint = args.endpoint or DEFAULT_ENDPOINTS[args.protocol]
    provider = TracerProvider(resource=Resource.create({"service.name": args.service_name}))
    check = DeliveryCheck(make_exporter(args.protocol, endpoint, args.api_key))
    provider.add_span_processor(BatchSpanProcessor(check))
    sent = send(provider, args.traces)
    flushed = provider.force_flush(timeout_millis=30_000)
    provider.shutdown()
    for trace_id in sent:
        print(trace_id)
    if not flushed or check.failed_batches:
        print(
            f"spanline at {endpoint} did not acknowledge every span (see the exporter's log)", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
