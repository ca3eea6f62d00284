"""A small OpenAI-compatible HTTP server for tests.

Instrumentation-shape tests must drive the real ``openai`` client over a real socket, so
the spans they capture are the ones instrumentations emit in production. The server
answers ``POST /v1/chat/completions`` deterministically (same request, same answer),
with full ``usage`` details (cached and reasoning tokens) so token attributes get
populated, tool calls when the request offers tools, and SSE streaming.

Special model names inject failures: ``error-429``, ``error-500`` (HTTP status with an
OpenAI-style error body).
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

_ANSWERS = (
    "Sure. Based on the details you shared, the order was shipped yesterday and should arrive within "
    "two business days. I have added a note to your account so the courier calls ahead.",
    "I checked the policy: the item is eligible for a full refund because it was returned within 30 "
    "days. The refund will appear on your statement in three to five business days.",
    "Here is a short summary: the first source supports the claim, the second contradicts it, and the "
    "third is too old to be relevant. I would treat the conclusion as tentative.",
)
RESPONSE_MODEL_SUFFIX = "-2024-08-06"
REASONING_TOKENS = 16


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _digest(body: dict[str, Any]) -> int:
    raw = json.dumps(body.get("messages", []), sort_keys=True).encode()
    return int.from_bytes(hashlib.sha256(raw).digest()[:4], "big")


def _wants_tool_call(body: dict[str, Any]) -> bool:
    """Call a tool when tools are offered and no tool result has come back yet."""
    messages = body.get("messages") or []
    return bool(body.get("tools")) and not any(m.get("role") == "tool" for m in messages)


def completion(body: dict[str, Any], serial: int) -> dict[str, Any]:
    """The non-streaming response for a request body."""
    digest = _digest(body)
    model = str(body.get("model", "gpt-4o-mini"))
    prompt_tokens = _tokens(json.dumps(body.get("messages", [])))
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if _wants_tool_call(body):
        tool = body["tools"][0]["function"]["name"]
        message["tool_calls"] = [
            {
                "id": f"call_stub{digest:08x}",
                "type": "function",
                "function": {"name": tool, "arguments": json.dumps({"query": "order status", "limit": 3})},
            }
        ]
        finish = "tool_calls"
        completion_tokens = 18
    else:
        message["content"] = _ANSWERS[digest % len(_ANSWERS)]
        finish = "stop"
        completion_tokens = _tokens(message["content"])
    completion_tokens += REASONING_TOKENS
    return {
        "id": f"chatcmpl-stub{serial:06d}{digest:08x}",
        "object": "chat.completion",
        "created": 1_760_000_000 + serial,
        "model": model + RESPONSE_MODEL_SUFFIX,
        "system_fingerprint": "fp_stub",
        "service_tier": "default",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": (prompt_tokens // 2) // 16 * 16, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": REASONING_TOKENS,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    }


def stream_chunks(body: dict[str, Any], serial: int) -> list[dict[str, Any]]:
    """SSE chunks equivalent to :func:`completion`, with a usage chunk if asked for."""
    full = completion(body, serial)
    choice = full["choices"][0]
    message = choice["message"]
    base = {k: full[k] for k in ("id", "created", "model", "system_fingerprint", "service_tier")}
    base["object"] = "chat.completion.chunk"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

    chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
    if message.get("tool_calls"):
        call = message["tool_calls"][0]
        args = call["function"]["arguments"]
        chunks.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["function"]["name"], "arguments": ""},
                        }
                    ]
                }
            )
        )
        for i in range(0, len(args), 12):
            chunks.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 12]}}]}))
    else:
        text = message["content"]
        for i in range(0, len(text), 40):
            chunks.append(chunk({"content": text[i : i + 40]}))
    chunks.append(chunk({}, choice["finish_reason"]))
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": full["usage"]})
    return chunks


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _StubHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``OpenAIStub.requests`` instead of stderr."""

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self._send_json(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})
        else:
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send_json(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error"}})
            return
        serial = self.server.record(body, dict(self.headers.items()))
        model = str(body.get("model", ""))
        if model.startswith("error-") and model[6:].isdigit():
            status = int(model[6:])
            error = {"message": f"stub failure {status}", "type": "server_error", "code": str(status)}
            self._send_json(status, {"error": error})
            return
        if body.get("stream"):
            self._stream(body, serial)
        else:
            self._send_json(200, completion(body, serial))

    def _stream(self, body: dict[str, Any], serial: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for c in stream_chunks(body, serial):
            self.wfile.write(b"data: " + json.dumps(c).encode() + b"\n\n")
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


class _StubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def record(self, body: dict[str, Any], headers: dict[str, str]) -> int:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            return len(self.requests)


class OpenAIStub:
    """Context manager: ``with OpenAIStub() as stub: OpenAI(base_url=stub.base_url, api_key="x")``."""

    def __init__(self) -> None:
        self._server = _StubHTTPServer()
        self._thread = threading.Thread(target=self._server.serve_forever, name="openai-stub", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Request bodies received, in order."""
        return self._server.requests

    @property
    def headers(self) -> list[dict[str, str]]:
        return self._server.headers

    def start(self) -> OpenAIStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
