"""The gateway as `retail-gateway serve` runs it, plus an event-loop lag probe for the benchmark.

`uvicorn tests.bench.lag_probe:create_app --factory` serves gateway.create_app() unchanged, and
a task on the same event loop that sleeps PROBE_SECONDS again and again and records how late it
wakes up: the lag every request on that loop waits behind. GET /__bench/lag answers the
percentiles since the last call (and starts a new window); every other request goes to the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

import gateway

PROBE_SECONDS = 0.005


class LagProbe:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.samples: list[float] = []
        self.task: asyncio.Task[None] | None = None

    async def probe(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(PROBE_SECONDS)
            self.samples.append(max(0.0, time.perf_counter() - started - PROBE_SECONDS))

    def window(self) -> dict[str, Any]:
        samples, self.samples = sorted(self.samples), []
        if not samples:
            return {"samples": 0}

        def pct(p: float) -> float:
            return round(samples[min(len(samples) - 1, int(len(samples) * p))] * 1000, 2)

        return {"samples": len(samples), "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": pct(1)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.probe())
        if scope["type"] == "http" and scope["path"] == "/__bench/lag":
            body = json.dumps(self.window()).encode()
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "lifespan" and self.task is not None:
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.task


def create_app() -> ASGIApp:
    return LagProbe(gateway.create_app())
