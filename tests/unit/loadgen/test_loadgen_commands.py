from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from spanline.loadgen.commands import add_commands


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spanline")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


class _Sink(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans = 0
        self.lock = threading.Lock()

    def Export(self, request, context):
        with self.lock:
            self.spans += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        return ExportTraceServiceResponse()


@pytest.fixture
def sink() -> Iterator[tuple[_Sink, str]]:
    servicer = _Sink()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(grace=None)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--target", "nohost", "--spans", "10"], "HOST:PORT"),
        (["--target", "127.0.0.1:99999", "--spans", "10"], "HOST:PORT"),
        (["--spans", "0"], "must be >= 1"),
        (["--spans", "ten"], "whole number"),
        (["--spans", "10", "--concurrency", "-1"], "must be >= 1"),
        (["--spans", "10", "--batch", "0"], "must be >= 1"),
        (["--duration", "0"], "> 0"),
        (["--duration", "nan"], "> 0"),
        (["--spans", "10", "--seed", "-3"], ">= 0"),
        (["--spans", "10", "--profile", "huge"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(["loadgen", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_unbounded_run_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["loadgen", "--target", "127.0.0.1:4317"])
    with pytest.raises(SystemExit) as exc:
        args.func(args)
    assert exc.value.code == 2
    assert "--spans" in capsys.readouterr().err


def test_json_output(sink: tuple[_Sink, str], capsys: pytest.CaptureFixture[str]) -> None:
    servicer, target = sink
    args = parse(
        ["loadgen", "--target", target, "--spans", "500", "--batch", "50", "--concurrency", "3", "--json"]
    )
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["spans_acked"] == 500 == servicer.spans
    assert out["errors_by_code"] == {}
    assert out["latency_p99_ms"] >= out["latency_p50_ms"] > 0


def test_heavy_profile(sink: tuple[_Sink, str], capsys: pytest.CaptureFixture[str]) -> None:
    servicer, target = sink
    args = parse(["loadgen", "--target", target, "--spans", "500", "--profile", "heavy", "--json"])
    assert args.profile == "heavy"
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["spans_acked"] == 500 == servicer.spans
    assert parse(["loadgen", "--spans", "1"]).profile == "default"


def test_table_output(sink: tuple[_Sink, str], capsys: pytest.CaptureFixture[str]) -> None:
    _, target = sink
    args = parse(["loadgen", "--target", target, "--spans", "200", "--gzip"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    for label in ("acked spans/s", "Export latency p50", "Export latency p99", "errors"):
        assert label in out


def test_unreachable_target_is_named_without_a_latency(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["loadgen", "--target", "127.0.0.1:1", "--spans", "100", "--max-retries", "0"])
    assert args.func(args) == 1
    captured = capsys.readouterr()
    assert "nothing answers OTLP/gRPC at 127.0.0.1:1" in captured.err and "--target" in captured.err
    assert "ms" not in captured.out


class _Refuser(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):
        context.abort(grpc.StatusCode.UNAVAILABLE, "broker down, try later")


def test_nothing_delivered_prints_no_latency_and_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Refuser(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        base = ["loadgen", "--target", f"127.0.0.1:{port}", "--spans", "100", "--max-retries", "0"]
        args = parse(base)
        assert args.func(args) == 1
        captured = capsys.readouterr()
        assert "- (no Export succeeded)" in captured.out
        assert " ms" not in captured.out
        assert "nothing was delivered" in captured.err and "broker down, try later" in captured.err
        args = parse([*base, "--json"])
        assert args.func(args) == 1
        out = json.loads(capsys.readouterr().out)
        assert out["latency_p50_ms"] is None and out["errors_by_code"] == {"UNAVAILABLE": 1}
    finally:
        server.stop(grace=None)
