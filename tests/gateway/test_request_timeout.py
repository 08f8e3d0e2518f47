"""The edge's request timeout: a request still unanswered after it gets 504 problem+json."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from gateway_infra.http import install_common_http


def _app() -> FastAPI:
    app = FastAPI()
    install_common_http(app, max_body_bytes=1024, timeout_seconds=0.05)

    @app.get("/never")
    async def never() -> dict[str, str]:
        await asyncio.Event().wait()  # nothing ever sets it: only the deadline ends this
        return {}

    @app.get("/quick")
    async def quick() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/own-timeout")
    async def own_timeout() -> dict[str, str]:
        raise TimeoutError("a backend call of the handler timed out")

    return app


async def _get(path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path)


async def test_a_request_past_the_deadline_gets_a_504_problem() -> None:
    response = await _get("/never")

    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/timeout"
    assert response.headers["x-correlation-id"]


async def test_a_request_answered_in_time_is_untouched() -> None:
    assert (await _get("/quick")).json() == {"status": "ok"}


async def test_a_handlers_own_timeout_error_is_not_mistaken_for_the_deadline() -> None:
    response = await _get("/own-timeout")

    assert response.status_code == 500
    assert response.json()["type"] == "/problems/internal-error"
