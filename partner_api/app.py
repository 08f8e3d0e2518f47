"""Factory of the partner API apps (/partner/v1, later /partner/v2)."""

from __future__ import annotations

from fastapi import FastAPI

from gateway_infra.http import install_common_http
from gateway_infra.openapi import install_openapi
from gateway_infra.settings import Settings


def create_partner_app(*, settings: Settings, version: str = "v1") -> FastAPI:
    """Build one version of the partner API."""
    app = FastAPI(
        title=f"Retail Sync Gateway: partner API {version}",
        version=version.lstrip("v") + ".0.0",
        summary="Endpoints marketplaces call to submit orders and read their state.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    install_common_http(app, max_body_bytes=settings.max_body_bytes)
    install_openapi(app)
    return app
