"""A scripted OpenAI-compatible judge endpoint for tests, on a real socket.

Each POST to ``/v1/chat/completions`` takes the next :class:`Reply` from the script (or
the default once the script is used up) and records the request body, headers and
arrival time, so tests can assert on what the judge client actually sent: the
structure of the prompt, the response format, retry timing.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass
class Reply:
    """What the stub answers to one request."""

    status: int = 200
    content: str | None = '{"explanation": "The answer addresses the request.", "verdict": "pass", ' + (
        '"injection_suspected": false}'
    )
    finish_reason: str = "stop"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    error_message: str = "stub error"
    prompt_tokens: int | None = None  # None: about len(prompt)/4
    completion_tokens: int | None = None
    refusal: str | None = None
    usage: bool = True


def verdict(v: str, explanation: str = "stub verdict", injection: bool = False) -> Reply:
    body = {"explanation": explanation, "verdict": v, "injection_suspected": injection}
    return Reply(content=json.dumps(body))


@dataclass
class Seen:
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client timed out and went away

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.loads(raw)
        reply = self.server.take(body, dict(self.headers.items()))
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.status != 200:
            error = {"message": reply.error_message, "type": "stub_error", "code": str(reply.status)}
            self._send(reply.status, {"error": error}, reply.headers)
            return
        prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        p_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else max(1, prompt // 4)
        c_tokens = (
            reply.completion_tokens
            if reply.completion_tokens is not None
            else max(1, len(reply.content or "") // 4)
        )
        payload: dict[str, Any] = {
            "id": f"chatcmpl-judge{self.server.count:05d}",
            "object": "chat.completion",
            "created": 1_760_000_000,
            "model": str(body.get("model", "")) + "-stub",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content, "refusal": reply.refusal},
                    "finish_reason": reply.finish_reason,
                    "logprobs": None,
                }
            ],
        }
        if reply.usage:
            payload["usage"] = {
                "prompt_tokens": p_tokens,
                "completion_tokens": c_tokens,
                "total_tokens": p_tokens + c_tokens,
            }
        self._send(200, payload, reply.headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: list[Reply], default: Reply) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = list(script)
        self.default = default
        self.seen: list[Seen] = []
        self.count = 0
        self._lock = threading.Lock()

    def take(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        with self._lock:
            self.count += 1
            self.seen.append(Seen(body, headers, time.monotonic()))
            return self.script.pop(0) if self.script else self.default


class JudgeStub:
    """``with JudgeStub([Reply(status=429, headers={"Retry-After": "1"})]) as stub: ...``"""

    def __init__(self, script: list[Reply] | None = None, default: Reply | None = None) -> None:
        self._server = _Server(script or [], default or Reply())
        self._thread = threading.Thread(target=self._server.serve_forever, name="judge-stub", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def seen(self) -> list[Seen]:
        return self._server.seen

    def push(self, *replies: Reply) -> None:
        with self._server._lock:
            self._server.script.extend(replies)

    def __enter__(self) -> JudgeStub:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
