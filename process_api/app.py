"""Factory of the process API app (/process): business workflows for internal apps."""

from __future__ import annotations

from fastapi import FastAPI

from gateway_infra.auth.dependencies import LayerAuth
from gateway_infra.http import NO_NATIVE_TELEMETRY, install_common_http
from gateway_infra.openapi import install_openapi
from gateway_infra.settings import Settings
from process_api.audit.log import AuditLog
from process_api.audit.routes import router as audit_router
from process_api.channels.routes import router as channels_router
from process_api.channels.service import ChannelProfiles
from process_api.deliveries.routes import router as deliveries_router
from process_api.deliveries.service import DeliveryOperations
from process_api.exceptions.routes import router as exceptions_router
from process_api.exceptions.service import ExceptionQueue
from process_api.fulfilment.routes import router as fulfilment_router
from process_api.fulfilment.service import FulfilmentService
from process_api.inventory.routes import router as inventory_router
from process_api.inventory.service import InventoryService
from process_api.journey.routes import router as journey_router
from process_api.order_to_cash.routes import router as orders_router
from process_api.order_to_cash.service import OrderService
from process_api.pricing.routes import router as pricing_router
from process_api.pricing.service import PricingService
from process_api.returns.routes import router as returns_router
from process_api.returns.service import ReturnsService


def create_process_app(
    *,
    settings: Settings,
    auth: LayerAuth,
    orders: OrderService,
    channels: ChannelProfiles,
    inventory: InventoryService,
    exceptions: ExceptionQueue,
    deliveries: DeliveryOperations | None = None,
    fulfilment: FulfilmentService | None = None,
    pricing: PricingService | None = None,
    returns: ReturnsService | None = None,
    audit: AuditLog | None = None,
) -> FastAPI:
    """Build the process API with its services injected; runs alone or mounted at /process."""
    app = FastAPI(
        telemetry=NO_NATIVE_TELEMETRY,
        title="Retail Sync Gateway: process API",
        version="1.0.0",
        summary="Order-to-cash, return-to-refund, inventory and prices for internal apps.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.orders = orders
    app.state.channels = channels
    app.state.inventory = inventory
    app.state.exceptions = exceptions
    app.state.deliveries = deliveries
    app.state.fulfilment = fulfilment
    app.state.pricing = pricing
    app.state.returns = returns
    app.state.audit = audit
    app.state.auth = auth
    install_common_http(
        app,
        max_body_bytes=settings.max_body_bytes,
        timeout_seconds=settings.request_timeout_seconds,
    )
    app.include_router(orders_router)
    app.include_router(journey_router)
    app.include_router(channels_router)
    app.include_router(inventory_router)
    app.include_router(exceptions_router)
    if deliveries is not None:
        app.include_router(deliveries_router)
    if fulfilment is not None:
        app.include_router(fulfilment_router)
    if pricing is not None:
        app.include_router(pricing_router)
    if returns is not None:
        app.include_router(returns_router)
    if audit is not None:
        app.include_router(audit_router)
    install_openapi(app, token_url=f"{auth.verifier.issuer}/oauth/token")
    return app
