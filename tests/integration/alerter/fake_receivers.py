"""A local HTTP server standing in for Slack (webhook + Web API) and PagerDuty Events v2.

Real sockets, real clients (slack_sdk, httpx): only the far end is ours. Responses can be
scripted per path (status, headers) to exercise retries; every request is recorded.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from spanline.core.broker import free_port

STALL = -1
"""A scripted status that never answers in time (for killing a sender mid-delivery)."""


@dataclass
class Request:
    path: str
    at: float
    body: dict[str, Any]


@dataclass
class FakeReceivers:
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    script: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _ts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, path: str, *responses: tuple[int, dict[str, str]]) -> None:
        self.script.setdefault(path, []).extend(responses)

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if request.content_type == "application/x-www-form-urlencoded":
            body: dict[str, Any] = {k: v for k, v in (await request.post()).items()}
        else:
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {"_raw": raw.decode("utf-8", "replace")}
        path = request.path
        self.requests.append(Request(path, time.monotonic(), body))
        queued = self.script.get(path)
        if queued:
            status, headers = queued.pop(0)
            if status == STALL:
                await asyncio.sleep(30)  # the sender is killed while waiting for this answer
            else:
                return web.Response(status=status, text="error", headers=headers)
        if path.startswith("/slack/webhook"):
            return web.Response(text="ok")
        if path.startswith("/api/chat.postMessage"):
            self._ts += 1
            return web.json_response(
                {"ok": True, "channel": body.get("channel"), "ts": f"1700000000.{self._ts:06d}"}
            )
        if path.startswith("/api/chat.update"):
            return web.json_response({"ok": True, "channel": body.get("channel"), "ts": body.get("ts")})
        if path.startswith("/v2/enqueue"):
            return web.json_response({"status": "success", "dedup_key": body.get("dedup_key")}, status=202)
        return web.Response(status=404, text="no_service")

    async def start(self) -> FakeReceivers:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, path: str, n: int, timeout: float = 30.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.hits(path)
            if len(got) >= n:
                return got
            await asyncio.sleep(0.05)
        raise AssertionError(f"{path}: {len(self.hits(path))} requests, wanted {n}")
