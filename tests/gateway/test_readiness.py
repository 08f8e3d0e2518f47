"""Readiness: our own database reachable and migrated; remote backends are detail only."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from gateway import Gateway


async def test_ready_when_the_database_is_migrated(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["backends"]["erp"]["adapter"] == "embedded"


async def test_not_ready_when_migrations_are_behind(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    gateway.database.run_write(lambda conn: conn.execute(text("DELETE FROM alembic_version")))

    response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["checks"]["migrations"]["status"] == "pending"


async def test_liveness_does_not_depend_on_the_database(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    gateway.database.run_write(lambda conn: conn.execute(text("DELETE FROM alembic_version")))

    assert (await client.get("/healthz")).status_code == 200
