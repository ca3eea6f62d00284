"""OTLP/HTTP ingest next to OTLP/gRPC: spans/s acknowledged and ingest CPU per 1k spans.

One ingest process against the bundled broker, 100-span requests, the same concurrency
for each transport, one phase each: gRPC (the loadgen), HTTP with binary protobuf, HTTP
with OTLP/JSON, HTTP protobuf gzip-compressed. Client and server share the machine's two
cores, so spans/s are a floor; CPU per 1k spans is ingest's own. Both protocols run the
same ExportPipeline, so the difference is the transport and the body decoding.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import json
import time
from typing import Any

import aiohttp
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from benchmarks.harness import bench_pipeline_env, cpu_seconds, print_table, start_service, write_result
from spanline.loadgen.request_pool import RequestPool
from spanline.loadgen.runner import LoadgenConfig, run_load

BATCH = 100


def _otlp_json(body: bytes) -> bytes:
    """OTLP/JSON of a protobuf request: protobuf JSON with hex trace/span ids."""
    tree = json_format.MessageToDict(ExportTraceServiceRequest.FromString(body))
    for rs in tree.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(tree).encode()


async def _http_load(
    url: str, bodies: list[bytes], headers: dict[str, str], seconds: float, concurrency: int
) -> dict[str, Any]:
    acked = failed = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker(offset: int) -> None:
            nonlocal acked, failed
            i = offset
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                async with session.post(url, data=bodies[i % len(bodies)], headers=headers) as resp:
                    await resp.read()
                    if resp.status == 200:
                        acked += BATCH
                    else:
                        failed += 1
                latencies.append((time.perf_counter() - t0) * 1000)
                i += concurrency

        started = time.monotonic()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "spans_acked": acked,
        "failed_requests": failed,
        "spans_per_s": acked / elapsed,
        "p50_ms": latencies[len(latencies) // 2] if latencies else 0.0,
        "p99_ms": latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=8.0, help="duration of each phase")
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args(argv)

    pool = RequestPool(batch=BATCH, pool_size=64, seed=3)
    protobuf = [pool.next()[0] for _ in range(64)]
    bodies = {
        "http_protobuf": (protobuf, {"Content-Type": "application/x-protobuf"}),
        "http_json": ([_otlp_json(b) for b in protobuf], {"Content-Type": "application/json"}),
        "http_protobuf_gzip": (
            [gzip.compress(b, 6) for b in protobuf],
            {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        ),
    }
    phases: dict[str, dict[str, Any]] = {}
    with bench_pipeline_env("ingest-http") as (_b, workdir, env):
        ingest = start_service("ingest", env, workdir)
        grpc_target = f"127.0.0.1:{env['SPANLINE_INGEST_PORT']}"
        url = f"http://127.0.0.1:{env['SPANLINE_INGEST_OTLP_HTTP_PORT']}/v1/traces"
        try:
            # warm-up of both transports (connections, producer metadata)
            asyncio.run(_http_load(url, protobuf, bodies["http_protobuf"][1], 1.5, args.concurrency))
            cfg = LoadgenConfig(
                target=grpc_target, duration_s=args.seconds, concurrency=args.concurrency, batch=BATCH
            )
            cpu0 = cpu_seconds(ingest.pid)
            grpc = asyncio.run(run_load(cfg, pool))
            cpu1 = cpu_seconds(ingest.pid)
            phases["grpc"] = {
                "spans_acked": grpc.spans_acked,
                "spans_per_s": grpc.spans_per_s,
                "p50_ms": grpc.latency_p50_ms,
                "p99_ms": grpc.latency_p99_ms,
                "errors": grpc.errors_by_code,
                "cpu_s_per_1k_spans": (cpu1 - cpu0) / max(1, grpc.spans_acked) * 1000,
            }
            for name, (payloads, headers) in bodies.items():
                cpu0 = cpu_seconds(ingest.pid)
                result = asyncio.run(_http_load(url, payloads, headers, args.seconds, args.concurrency))
                cpu1 = cpu_seconds(ingest.pid)
                result["cpu_s_per_1k_spans"] = (cpu1 - cpu0) / max(1, result["spans_acked"]) * 1000
                phases[name] = result
        finally:
            ingest.stop()

    out = {
        "concurrency": args.concurrency,
        "batch": BATCH,
        "seconds_per_phase": args.seconds,
        "request_bytes": {
            "protobuf": sum(map(len, protobuf)) // len(protobuf),
            "json": sum(map(len, bodies["http_json"][0])) // len(protobuf),
            "protobuf_gzip": sum(map(len, bodies["http_protobuf_gzip"][0])) // len(protobuf),
        },
        "phases": {
            k: {m: (round(v, 4) if isinstance(v, float) else v) for m, v in p.items()}
            for k, p in phases.items()
        },
    }
    print_table(
        "ingest over OTLP/gRPC and OTLP/HTTP",
        [
            (
                name,
                f"{p['spans_per_s']:>9,.0f} spans/s  p50 {p['p50_ms']:.1f} ms  p99 {p['p99_ms']:.1f} ms  "
                f"ingest CPU {p['cpu_s_per_1k_spans']:.4f} s/1k spans",
            )
            for name, p in phases.items()
        ],
    )
    path = write_result("ingest_http", out)
    print(f"  -> {path}")
    return out


if __name__ == "__main__":
    main()
