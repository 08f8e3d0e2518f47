"""Factory of the system API app (/system): ERP and WMS capabilities for internal clients."""

from __future__ import annotations

from fastapi import FastAPI

from gateway_infra.auth.dependencies import LayerAuth
from gateway_infra.http import NO_NATIVE_TELEMETRY, install_common_http
from gateway_infra.openapi import install_openapi
from gateway_infra.settings import Settings
from system_api.erp.port import ErpPort
from system_api.erp.routes import router as erp_router
from system_api.wms.port import WmsPort
from system_api.wms.routes import router as wms_router


def create_system_app(
    *, settings: Settings, auth: LayerAuth, erp: ErpPort, wms: WmsPort
) -> FastAPI:
    """Build the system API with its backends injected; it can run alone or mounted at /system."""
    app = FastAPI(
        telemetry=NO_NATIVE_TELEMETRY,
        title="Retail Sync Gateway: system API",
        version="1.0.0",
        summary="ERP and WMS capabilities over the systems of record, for internal clients.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.erp = erp
    app.state.wms = wms
    app.state.auth = auth
    install_common_http(
        app,
        max_body_bytes=settings.max_body_bytes,
        timeout_seconds=settings.request_timeout_seconds,
    )
    app.include_router(erp_router)
    app.include_router(wms_router)
    install_openapi(app, token_url=f"{auth.verifier.issuer}/oauth/token")
    return app
