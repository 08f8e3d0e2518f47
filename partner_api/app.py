"""Factory of the partner API apps (/partner/v1 and /partner/v2): one per version, each behind
the partner edge (OAuth2, per-partner throttling, idempotency, channel isolation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI

from gateway_infra.auth.dependencies import LayerAuth
from gateway_infra.delivery import Subscriptions
from gateway_infra.http import NO_NATIVE_TELEMETRY, install_common_http
from gateway_infra.openapi import install_openapi
from gateway_infra.outbox import EventFeed
from gateway_infra.settings import Settings
from gateway_infra.throttle import StateHeadersMiddleware
from partner_api.deprecation import DeprecationMiddleware, deprecation_headers
from partner_api.edge import IDEMPOTENCY_HEADER, IDEMPOTENCY_KEY_SCHEMA, EdgeServices
from partner_api.events import build_events_router
from partner_api.inventory import build_inventory_router
from partner_api.orders import build_orders_router
from partner_api.prices import build_prices_router
from partner_api.returns import build_returns_router
from partner_api.shipments import build_shipments_router
from partner_api.v1.schemas import V1Inventory, V1Orders, V1Prices, V1Returns, V1Shipments
from partner_api.v2.schemas import V2Inventory, V2Orders, V2Prices, V2Returns, V2Shipments
from partner_api.webhooks import build_webhooks_router
from process_api.fulfilment.port import ShipmentsPort
from process_api.inventory.port import InventoryPort
from process_api.order_to_cash.port import OrdersPort
from process_api.pricing.port import PricesPort
from process_api.returns.port import ReturnsPort

Version = Literal["v1", "v2"]
MIGRATION_NOTE = Path(__file__).parent / "migration-v1-to-v2.md"
REPRESENTATIONS: dict[str, Any] = {"v1": V1Orders(), "v2": V2Orders()}
INVENTORY_REPRESENTATIONS: dict[str, Any] = {"v1": V1Inventory(), "v2": V2Inventory()}
SHIPMENT_REPRESENTATIONS: dict[str, Any] = {"v1": V1Shipments(), "v2": V2Shipments()}
RETURN_REPRESENTATIONS: dict[str, Any] = {"v1": V1Returns(), "v2": V2Returns()}
PRICE_REPRESENTATIONS: dict[str, Any] = {"v1": V1Prices(), "v2": V2Prices()}


def create_partner_app(
    *,
    settings: Settings,
    version: Version,
    auth: LayerAuth,
    edge: EdgeServices,
    orders: OrdersPort,
    inventory: InventoryPort,
    events: EventFeed,
    webhooks: Subscriptions | None = None,
    shipments: ShipmentsPort,
    returns: ReturnsPort | None = None,
    prices: PricesPort | None = None,
) -> FastAPI:
    """Build one version of the partner API; runs alone or mounted at /partner/<version>."""
    representation = REPRESENTATIONS[version]
    deprecated = version == "v1" and settings.partner_v1_deprecation is not None
    app = FastAPI(
        telemetry=NO_NATIVE_TELEMETRY,
        title=f"Retail Sync Gateway: partner API {version}",
        version=f"{version.lstrip('v')}.0.0",
        summary=(
            "Endpoints marketplaces call to submit orders, read their state and shipments, and "
            "read the availability of their channel."
        ),
        description=(
            "Authenticate with OAuth2 client credentials at /oauth/token. Every state-changing "
            f"POST needs an `{IDEMPOTENCY_HEADER}` header; keys are kept "
            f"{settings.idempotency_retention_seconds // 3600} hours. Requests are throttled per "
            "client (RateLimit-Policy and RateLimit headers; 429 with Retry-After)."
            + (
                f" This version is deprecated and sunsets on {settings.partner_v1_sunset:%Y-%m-%d}"
                "; see the migration note linked in the Deprecation headers."
                if deprecated and settings.partner_v1_sunset
                else ""
            )
        ),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.auth = auth
    app.state.edge = edge
    app.state.orders = orders
    app.state.inventory = inventory
    app.state.events = events
    app.state.webhooks = webhooks
    app.state.shipments = shipments
    app.state.returns = returns
    app.state.prices = prices
    routers = [
        build_orders_router(representation),
        build_inventory_router(
            INVENTORY_REPRESENTATIONS[version],
            answers_reused=settings.availability_read_cache_seconds > 0,
        ),
        build_events_router(),
    ]
    if webhooks is not None:
        routers.append(build_webhooks_router())
    routers.append(build_shipments_router(SHIPMENT_REPRESENTATIONS[version]))
    if returns is not None:
        routers.append(build_returns_router(RETURN_REPRESENTATIONS[version]))
    if prices is not None:
        routers.append(build_prices_router(PRICE_REPRESENTATIONS[version]))
    for router in routers:
        # The routes themselves, not the router: FastAPI matches the routes of an included
        # router through a wrapper, twice per request. Each route already carries its router's
        # prefix, tags and responses, so the OpenAPI document is the same. (The app's
        # dependency_overrides would not reach them; the gateway sets none.)
        app.router.routes.extend(router.routes)
    app.add_middleware(StateHeadersMiddleware)
    if version == "v1":
        app.add_middleware(
            DeprecationMiddleware,
            headers=deprecation_headers(
                settings.partner_v1_deprecation,
                settings.partner_v1_sunset,
                settings.partner_v1_migration_url,
            ),
        )
    install_common_http(
        app,
        max_body_bytes=settings.max_body_bytes,
        timeout_seconds=settings.request_timeout_seconds,
    )
    install_openapi(
        app,
        token_url=f"{auth.verifier.issuer}/oauth/token",
        required_headers={IDEMPOTENCY_HEADER: IDEMPOTENCY_KEY_SCHEMA},
    )
    return app
