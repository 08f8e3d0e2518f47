"""Composition root of the Retail Sync Gateway: builds the three layer apps, mounts them, and
holds the `retail-gateway` command line (serve, migrate, seed-demo)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import getpass
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import MetaData, text

from contracts import Money, Product, ProductStatus
from contracts.channel import ChannelProfile
from contracts.exceptions import ResolveAction
from contracts.wms import AdjustmentReason, StockAdjustmentRequest
from gateway_infra import backup as backup_store
from gateway_infra import contract_documents, contracts_cli
from gateway_infra import schema_migrations as migrations
from gateway_infra.auth.client_token import ClientCredentials
from gateway_infra.auth.clients import ClientError, ClientKind, ClientRecord, ClientRegistry
from gateway_infra.auth.dependencies import LayerAuth
from gateway_infra.auth.keys import SigningKeys
from gateway_infra.auth.scopes import PARTNER_SCOPES, PROCESS_SCOPES, SYSTEM_SCOPES, Layer
from gateway_infra.auth.secret_box import load_secret_box
from gateway_infra.auth.server import GatewayAuthorizationServer, create_oauth_router
from gateway_infra.auth.tokens import TokenIssuer, TokenVerifier
from gateway_infra.clock import Clock, SystemClock
from gateway_infra.database import Database, normalise_url
from gateway_infra.delivery import DeliveryPolicy, WebhookDelivery
from gateway_infra.delivery import cli as delivery_cli
from gateway_infra.delivery.tables import metadata as delivery_metadata
from gateway_infra.event_retention import EventPurge
from gateway_infra.http import NO_NATIVE_TELEMETRY, install_common_http
from gateway_infra.logging import configure_logging
from gateway_infra.metrics import (
    MULTIPROC_ENV,
    MetricsAccess,
    metrics_endpoint,
    prepare_multiprocess_dir,
    process_started,
    process_stopped,
    remove_multiprocess_dir,
)
from gateway_infra.outbox import EventFeed, Sequencer
from gateway_infra.problems import ProblemType, problem_response
from gateway_infra.resilience import CircuitBreaker, GuardPolicy
from gateway_infra.scheduler import Recurring, Scheduler
from gateway_infra.settings import Settings, settings_reference
from gateway_infra.stored_figures import infra_figures
from gateway_infra.tables import metadata as infra_metadata
from gateway_infra.throttle import Throttle
from gateway_infra.tracing import configure_tracing, shutdown_tracing
from gateway_infra.unit_of_work import Store, UnitOfWork
from partner_api.app import MIGRATION_NOTE, create_partner_app
from partner_api.edge import EdgeServices
from partner_api.events import PARTNER_EVENT_TYPES
from partner_api.housekeeping import IdempotencyPurge
from partner_api.idempotency import IdempotencyStore
from partner_api.tables import metadata as partner_metadata
from process_api.app import create_process_app
from process_api.audit import AuditLog
from process_api.channels import ChannelProfiles, ChannelProfilesConfigError, load_profiles_config
from process_api.channels.demo import DEMO_CHANNEL_PROFILES
from process_api.console import (
    ConsoleReads,
    Operator,
    OperatorError,
    Operators,
    create_console_app,
)
from process_api.deliveries import DeliveryOperations, open_endpoint_exception, replay_action
from process_api.exceptions import (
    ExceptionRoutingConfigError,
    Routing,
    install_routing,
    load_routing_config,
)
from process_api.exceptions.in_force import record_policies_in_force
from process_api.exceptions.service import ExceptionQueue
from process_api.fulfilment.service import FulfilmentService
from process_api.inventory.service import InventoryService
from process_api.journey.repository import order_of_event
from process_api.marketplaces import MarketplaceAdapter
from process_api.marketplaces.amazon import (
    LwaCredentials,
    build_amazon_adapter,
    load_amazon_profile,
)
from process_api.monitoring import (
    SlaCheck,
    SlaMonitors,
    SlaMonitorsConfigError,
    business_figures,
    load_sla_monitors,
)
from process_api.order_to_cash.service import OrderService
from process_api.personal_data import PersonalDataPurge
from process_api.pricing.service import PricingService
from process_api.returns.service import ReturnsService
from process_api.tables import metadata as process_metadata
from system_api.app import create_system_app
from system_api.backends.tryton.erp import TrytonErp
from system_api.backends.tryton.rpc import TrytonClient, TrytonConnection
from system_api.backends.tryton.wms import TrytonWms
from system_api.erp.embedded import EmbeddedErp, upsert_products
from system_api.erp.http_client import HttpErpClient
from system_api.erp.port import ErpPort
from system_api.owned_ports import OwnedErp, OwnedWms
from system_api.ownership import DEFAULT_SYSTEM_OF_RECORD, OwnershipMap, OwnershipPolicy
from system_api.tables import metadata as system_metadata
from system_api.wms.embedded import EmbeddedWms, ensure_warehouse
from system_api.wms.http_client import HttpWmsClient
from system_api.wms.port import WmsPort

ALL_METADATA: tuple[MetaData, ...] = (
    infra_metadata,
    delivery_metadata,
    system_metadata,
    process_metadata,
    partner_metadata,
)
SECRET_SETTINGS = (
    "key_encryption_key",
    "system_api_client_secret",
    "tryton_password",
    "metrics_bearer_token",
)
NOT_READY = ProblemType("not-ready", "The gateway is not ready to serve", 503)


@dataclass
class Gateway:
    """Everything one gateway process runs on, wired together."""

    settings: Settings
    clock: Clock
    database: Database
    store: Store
    scheduler: Scheduler
    keys: SigningKeys
    clients: ClientRegistry
    verifier: TokenVerifier
    authorization_server: GatewayAuthorizationServer
    throttle: Throttle
    idempotency: IdempotencyStore
    embedded_erp: EmbeddedErp
    embedded_wms: EmbeddedWms
    system_erp: ErpPort
    system_wms: WmsPort
    breakers: list[CircuitBreaker]
    erp: ErpPort
    wms: WmsPort
    orders: OrderService
    inventory: InventoryService
    fulfilment: FulfilmentService
    returns: ReturnsService
    pricing: PricingService
    channels: ChannelProfiles
    channel_profiles_config: tuple[ChannelProfile, ...]
    idempotency_purge: IdempotencyPurge
    event_purge: EventPurge
    availability_sweep: Recurring
    exceptions: ExceptionQueue
    exception_escalation: Recurring
    sequencer: Sequencer
    events: EventFeed
    webhooks: WebhookDelivery
    sla_monitors: SlaMonitors
    sla_check: SlaCheck
    closers: list[Callable[[], Any]] = field(default_factory=list)
    marketplaces: list[MarketplaceAdapter] = field(default_factory=list)
    marketplace_jobs: list[Recurring] = field(default_factory=list)
    personal_data: PersonalDataPurge | None = None
    personal_data_purge: Recurring | None = None

    @property
    def issuer(self) -> str:
        return str(self.settings.public_base_url).rstrip("/")

    def layer_auth(self, layer: Layer) -> LayerAuth:
        return LayerAuth(verifier=self.verifier, layer=layer)

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            result = close()
            if asyncio.iscoroutine(result):
                await result
        self.database.dispose()


def build_gateway(settings: Settings | None = None, *, clock: Clock | None = None) -> Gateway:
    """Wire the gateway's parts from settings; nothing starts running here."""
    settings = settings or Settings()
    clock = clock or SystemClock()
    issuer = str(settings.public_base_url).rstrip("/")
    database = Database(
        settings.database_url,
        busy_timeout_ms=settings.db_busy_timeout_ms,
        pool_size=settings.db_pool_size,
    )
    store = Store(database, clock)
    # Events about an order record the order and its origin correlation id (its journey).
    store.order_of = order_of_event
    # Validated here, so a mistake in the configured profiles stops the gateway at start-up.
    channel_profiles_config = tuple(
        load_profiles_config(settings.channel_profiles, known_tiers=settings.throttle_tiers)
        if settings.channel_profiles
        else ()
    )
    channels = ChannelProfiles(store, known_tiers=settings.throttle_tiers)
    # The same for the exception routing rules; every exception raised through this store is
    # routed by them.
    routing = (
        load_routing_config(settings.exception_routing) if settings.exception_routing else Routing()
    )
    install_routing(store, routing)
    scheduler = Scheduler(store, lease=timedelta(seconds=settings.scheduler_lease_seconds))
    box = load_secret_box(
        settings.key_encryption_key.get_secret_value() if settings.key_encryption_key else None,
        database_path=None
        if database.is_memory or not database.is_sqlite
        else database.url.database,
    )
    keys = SigningKeys(
        store,
        box,
        alg=settings.signing_alg,
        grace=timedelta(seconds=settings.signing_key_grace_seconds),
    )
    clients = ClientRegistry(
        store,
        status_cache_seconds=settings.client_status_cache_seconds,
        known_tiers=settings.throttle_tiers,
    )
    token_issuer = TokenIssuer(
        keys, clock, issuer=issuer, lifetime_seconds=settings.access_token_lifetime_seconds
    )
    verifier = TokenVerifier(
        keys, clients, clock, issuer=issuer, leeway_seconds=settings.token_leeway_seconds
    )
    throttle = Throttle(redis_url=settings.redis_url)
    closers: list[Callable[[], Any]] = [throttle.aclose]
    idempotency = IdempotencyStore(
        store,
        retention=timedelta(seconds=settings.idempotency_retention_seconds),
        lease=timedelta(seconds=settings.idempotency_lease_seconds),
    )
    ownership = OwnershipPolicy(
        OwnershipMap.from_config({**DEFAULT_SYSTEM_OF_RECORD, **settings.system_of_record}), store
    )
    embedded_erp = EmbeddedErp(store, price_tolerance=settings.erp_price_tolerance)
    embedded_wms = EmbeddedWms(store)
    backend_erp: ErpPort = embedded_erp
    backend_wms: WmsPort = embedded_wms
    breakers: list[CircuitBreaker] = []
    if settings.system_backend == "tryton":
        tryton = _tryton_client(settings, clock)
        closers.append(tryton.aclose)
        breakers.append(tryton.guard.breaker)
        tryton_erp = TrytonErp(tryton, price_tolerance=settings.erp_price_tolerance)
        backend_erp, backend_wms = tryton_erp, TrytonWms(tryton, tryton_erp, clock=clock)
    system_erp = OwnedErp(backend_erp, ownership)
    system_wms = OwnedWms(backend_wms, ownership)
    erp: ErpPort
    wms: WmsPort
    if settings.system_api_transport == "http":
        credentials = _system_api_credentials(settings, issuer)
        # One breaker for the one service behind both clients.
        system_api_breaker = CircuitBreaker(
            "system_api",
            clock,
            failure_threshold=settings.system_api_breaker_failures,
            reset_after=timedelta(seconds=settings.system_api_breaker_reset_seconds),
        )
        breakers.append(system_api_breaker)
        http_erp = HttpErpClient(
            settings.system_api_url,
            timeout_seconds=settings.system_api_timeout_seconds,
            credentials=credentials,
            breaker=system_api_breaker,
        )
        http_wms = HttpWmsClient(
            settings.system_api_url,
            timeout_seconds=settings.system_api_timeout_seconds,
            credentials=credentials,
            breaker=system_api_breaker,
        )
        closers.extend([http_erp.aclose, http_wms.aclose])
        erp, wms = http_erp, http_wms
    else:
        erp, wms = system_erp, system_wms
    inventory = InventoryService(
        store,
        profiles=channels.profiles_in,
        read_cache_seconds=settings.availability_read_cache_seconds,
    )
    inventory.register_timers(scheduler)
    orders = OrderService(store, erp, inventory, profiles=channels.get)
    orders.register_timers(scheduler)
    fulfilment = FulfilmentService(store, erp, wms, inventory)
    fulfilment.register_timers(scheduler)
    returns = ReturnsService(store, erp, wms, inventory, profiles=channels.get)
    returns.register_timers(scheduler)
    pricing = PricingService(store, erp, channels)
    pricing.register_timers(scheduler)
    purge = IdempotencyPurge(store, idempotency)
    purge.register(scheduler)
    event_purge = EventPurge(store, retention=timedelta(days=settings.event_retention_days))
    event_purge.register(scheduler)
    sweep = inventory.sweep_job(timedelta(seconds=settings.availability_sweep_seconds))
    sweep.register(scheduler)
    exception_queue = ExceptionQueue(store, orders=orders, routing=routing)
    escalation = exception_queue.escalation_job(
        timedelta(seconds=settings.exception_escalation_seconds)
    )
    escalation.register(scheduler)
    personal_data = PersonalDataPurge(store, settings.personal_data_retention)
    personal_data_purge = personal_data.job(timedelta(seconds=settings.personal_data_purge_seconds))
    personal_data_purge.register(scheduler)
    channels.on_change(inventory.republish_channel)
    # Checked here too, so a mistake in the monitor rules stops the gateway at start-up.
    sla_monitors = (
        load_sla_monitors(settings.sla_monitors) if settings.sla_monitors else SlaMonitors()
    )
    sla_check = SlaCheck(store, sla_monitors, timedelta(seconds=settings.sla_check_seconds))
    sla_check.job.register(scheduler)
    # Partners receive the event types of the partner layer's feed, through webhooks too; an
    # endpoint disabled for failing too long opens an exception in the same transaction.
    webhooks = WebhookDelivery(
        store,
        box,
        DeliveryPolicy.from_settings(settings),
        allowed_types=PARTNER_EVENT_TYPES,
        on_endpoint_disabled=open_endpoint_exception,
    )
    closers.append(webhooks.aclose)
    # Resolving an endpoint's exception with `replay` sends its dead letters again.
    exception_queue.register_action(
        ResolveAction.REPLAY, replay_action(webhooks.admin, webhooks.subscriptions)
    )
    marketplaces, marketplace_jobs = _marketplace_adapters(settings, store, orders, scheduler)
    closers.extend(adapter.aclose for adapter in marketplaces)
    return Gateway(
        settings=settings,
        clock=clock,
        database=database,
        store=store,
        scheduler=scheduler,
        keys=keys,
        clients=clients,
        verifier=verifier,
        authorization_server=GatewayAuthorizationServer(clients, token_issuer),
        throttle=throttle,
        idempotency=idempotency,
        embedded_erp=embedded_erp,
        embedded_wms=embedded_wms,
        system_erp=system_erp,
        system_wms=system_wms,
        breakers=breakers,
        erp=erp,
        wms=wms,
        orders=orders,
        inventory=inventory,
        fulfilment=fulfilment,
        returns=returns,
        pricing=pricing,
        channels=channels,
        channel_profiles_config=channel_profiles_config,
        idempotency_purge=purge,
        event_purge=event_purge,
        availability_sweep=sweep,
        exceptions=exception_queue,
        exception_escalation=escalation,
        sequencer=Sequencer(database, poll_seconds=settings.outbox_sequencer_poll_seconds),
        events=EventFeed(database),
        webhooks=webhooks,
        sla_monitors=sla_monitors,
        sla_check=sla_check,
        closers=closers,
        marketplaces=marketplaces,
        marketplace_jobs=marketplace_jobs,
        personal_data=personal_data,
        personal_data_purge=personal_data_purge,
    )


def _marketplace_adapters(
    settings: Settings, store: Store, orders: OrderService, scheduler: Scheduler
) -> tuple[list[MarketplaceAdapter], list[Recurring]]:
    """The Amazon adapter when a profile is configured, its sync round registered."""
    if not settings.amazon_profile:
        return [], []
    assert settings.amazon_lwa_client_id and settings.amazon_lwa_client_secret
    assert settings.amazon_lwa_refresh_token  # checked by Settings
    adapter = build_amazon_adapter(
        load_amazon_profile(settings.amazon_profile),
        LwaCredentials(
            client_id=settings.amazon_lwa_client_id,
            client_secret=settings.amazon_lwa_client_secret,
            refresh_token=settings.amazon_lwa_refresh_token,
        ),
        store=store,
        orders=orders,
    )
    job = adapter.sync_job()
    job.register(scheduler)
    return [adapter], [job]


def _tryton_client(settings: Settings, clock: Clock) -> TrytonClient:
    if settings.tryton_password is None:
        raise ValueError("GATEWAY_TRYTON_PASSWORD is required with GATEWAY_SYSTEM_BACKEND=tryton")
    return TrytonClient.connect(
        TrytonConnection(
            url=settings.tryton_url,
            database=settings.tryton_database,
            username=settings.tryton_user,
            password=settings.tryton_password.get_secret_value(),
        ),
        CircuitBreaker(
            "tryton",
            clock,
            failure_threshold=settings.tryton_breaker_failures,
            reset_after=timedelta(seconds=settings.tryton_breaker_reset_seconds),
        ),
        GuardPolicy(
            timeout_seconds=settings.tryton_timeout_seconds,
            attempts=settings.tryton_attempts,
            max_concurrency=settings.tryton_max_concurrency,
            calls_per_second=settings.tryton_calls_per_second,
        ),
    )


def _system_api_credentials(settings: Settings, issuer: str) -> ClientCredentials | None:
    if not settings.system_api_client_id or not settings.system_api_client_secret:
        return None
    return ClientCredentials(
        token_url=settings.system_api_token_url or f"{issuer}/oauth/token",
        client_id=settings.system_api_client_id,
        client_secret=settings.system_api_client_secret.get_secret_value(),
        scope=" ".join(sorted(SYSTEM_SCOPES)),
    )


def build_app(gateway: Gateway, *, run_background: bool = True) -> FastAPI:
    """The root app: health probes and the three layers mounted under their prefixes."""
    settings = gateway.settings

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        await gateway.idempotency_purge.ensure_scheduled()
        await gateway.event_purge.ensure_scheduled()
        await gateway.availability_sweep.ensure_scheduled()
        await gateway.exception_escalation.ensure_scheduled()
        for job in gateway.marketplace_jobs:
            await job.ensure_scheduled()
        if gateway.personal_data_purge is not None:
            await gateway.personal_data_purge.ensure_scheduled()
        await gateway.sla_check.job.ensure_scheduled()
        process_started()
        # Creates the configured profiles whose channel has none (never overwrites one), then
        # loads every profile into the cache; an invalid stored profile is logged, not fatal.
        await gateway.channels.seed(gateway.channel_profiles_config, actor="config")
        # A change of the exception routing rules or workflow policies goes to the audit log.
        routing = gateway.exceptions.routing or Routing()
        await gateway.store.write(lambda uow: record_policies_in_force(uow, routing))
        if run_background:
            tasks.append(asyncio.create_task(gateway.sequencer.run_forever()))
        if run_background and settings.webhooks_enabled:
            tasks.append(
                asyncio.create_task(gateway.webhooks.run_forever(settings.webhook_poll_seconds))
            )
        if run_background and settings.scheduler_enabled:
            tasks.append(
                asyncio.create_task(gateway.scheduler.run_forever(settings.scheduler_poll_seconds))
            )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await gateway.aclose()
            process_stopped()

    app = FastAPI(
        telemetry=NO_NATIVE_TELEMETRY,
        title="Retail Sync Gateway",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_common_http(
        app,
        max_body_bytes=settings.max_body_bytes,
        timeout_seconds=settings.request_timeout_seconds,
        exempt_paths=("/oauth/", "/ops/"),
        # Every answer is counted, the shared middleware's own (413, 415, 504) too.
        count_requests=True,
    )

    # Routes are matched in order: the partner APIs, the busiest, are tried first (after the
    # migration note, whose configurable path may lie under a partner prefix).
    @app.get(settings.partner_v1_migration_url, include_in_schema=False)
    async def partner_migration_note() -> PlainTextResponse:
        return PlainTextResponse(MIGRATION_NOTE.read_text(), media_type="text/markdown")

    edge = EdgeServices(
        throttle=gateway.throttle,
        tiers=settings.throttle_tiers,
        idempotency=gateway.idempotency,
    )
    for version in ("v2", "v1"):
        app.mount(
            f"/partner/{version}",
            create_partner_app(
                settings=settings,
                version=version,
                auth=gateway.layer_auth(Layer.PARTNER),
                edge=edge,
                orders=gateway.orders,
                inventory=gateway.inventory,
                shipments=gateway.fulfilment,
                returns=gateway.returns,
                prices=gateway.pricing,
                events=gateway.events,
                webhooks=gateway.webhooks.subscriptions,
            ),
        )
    if settings.metrics_enabled:
        app.add_route(
            "/metrics",
            metrics_endpoint(
                MetricsAccess(
                    settings.metrics_allowed_networks,
                    settings.metrics_bearer_token.get_secret_value()
                    if settings.metrics_bearer_token
                    else None,
                    trust_forwarded=settings.forwarded_allow_ips is not None,
                ),
                {
                    "infrastructure": infra_figures(gateway.database),
                    "process": business_figures(gateway.store, gateway.sla_monitors),
                },
                gateway.clock.now,
            ),
            methods=["GET"],
            include_in_schema=False,
        )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        return await readiness(gateway)

    app.include_router(
        create_oauth_router(
            server=gateway.authorization_server,
            keys=gateway.keys,
            issuer=gateway.issuer,
            throttle=gateway.throttle,
            token_throttle=settings.token_endpoint_throttle,
        )
    )

    app.mount(
        "/system",
        create_system_app(
            settings=settings,
            auth=gateway.layer_auth(Layer.SYSTEM),
            erp=gateway.system_erp,
            wms=gateway.system_wms,
        ),
    )
    app.mount(
        "/process",
        create_process_app(
            settings=settings,
            auth=gateway.layer_auth(Layer.PROCESS),
            orders=gateway.orders,
            channels=gateway.channels,
            inventory=gateway.inventory,
            exceptions=gateway.exceptions,
            fulfilment=gateway.fulfilment,
            returns=gateway.returns,
            pricing=gateway.pricing,
            deliveries=DeliveryOperations(gateway.webhooks.admin),
            audit=AuditLog(gateway.store),
        ),
    )
    app.mount("/ops", create_ops_console(gateway))
    return app


def operators_of(gateway: Gateway) -> Operators:
    return Operators(
        gateway.store, session_lifetime=timedelta(seconds=gateway.settings.ops_session_seconds)
    )


def create_ops_console(gateway: Gateway) -> FastAPI:
    """The ops console for people (docs/ops-console.md), over the process layer's services."""
    return create_console_app(
        settings=gateway.settings,
        clock=gateway.clock,
        operators=operators_of(gateway),
        reads=ConsoleReads(gateway.store),
        orders=gateway.orders,
        exceptions=gateway.exceptions,
        audit=AuditLog(gateway.store),
        throttle=gateway.throttle,
        deliveries=DeliveryOperations(gateway.webhooks.admin),
    )


async def readiness(gateway: Gateway) -> JSONResponse:
    """Ready when our own database answers and its migrations are current; backends are detail."""
    checks: dict[str, Any] = {}
    ready = True
    try:
        state = await asyncio.to_thread(migrations.migration_state, gateway.database)
        await gateway.database.read(lambda conn: conn.execute(text("SELECT 1")).scalar_one())
        checks["database"] = {"status": "ok", "backend": gateway.database.url.get_backend_name()}
        checks["migrations"] = {
            "status": "ok" if state.is_current else "pending",
            "current": list(state.current),
            "head": list(state.head),
        }
        ready = state.is_current
    except Exception as exc:  # noqa: BLE001 - any failure to reach our store means not ready
        checks["database"] = {"status": "unreachable", "error": type(exc).__name__}
        ready = False
    checks["backends"] = {
        "erp": {"adapter": gateway.erp.name},
        "wms": {"adapter": gateway.wms.name},
        "circuit_breakers": {b.name: b.snapshot() for b in gateway.breakers},
    }
    if not ready:
        return problem_response(NOT_READY, "see checks", checks=checks)
    return JSONResponse({"status": "ready", "checks": checks})


def create_app() -> FastAPI:
    """ASGI factory for uvicorn (`gateway:create_app`), configured from the environment."""
    settings = Settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    configure_tracing(settings.otel_exporter, service_name=settings.otel_service_name)
    gateway = build_gateway(settings)
    gateway.closers.insert(0, shutdown_tracing)  # closed last: flushes the spans of the rest
    app = build_app(gateway)
    # Everything built so far lives as long as the process: keep it out of the collector's
    # full passes, whose pauses would otherwise show up as request latency.
    gc.freeze()
    return app


# ---------------------------------------------------------------- command line

DEMO_ON_HAND = 100
DEMO_PRODUCTS = (
    ("MUG-RED-350", "Red stoneware mug 350 ml", "12.90"),
    ("MUG-BLUE-350", "Blue stoneware mug 350 ml", "12.90"),
    ("TEE-ORG-M", "Organic cotton tee, size M", "24.00"),
    ("TEE-ORG-L", "Organic cotton tee, size L", "24.00"),
    ("LAMP-DESK-01", "Desk lamp with dimmer", "59.00"),
    ("BOTTLE-STEEL-750", "Steel bottle 750 ml", "19.50"),
)


def _emit(args: argparse.Namespace, data: dict[str, Any], human: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, default=str))
    else:
        print(human)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """Apply migrations and make sure token signing keys exist (run once before replicas)."""
    database = Database(settings.database_url)
    try:
        migrations.upgrade(database)
        state = migrations.migration_state(database)
    finally:
        database.dispose()
    gateway = build_gateway(settings)
    try:
        gateway.keys.ensure()
    finally:
        gateway.database.dispose()
    url = database.url.render_as_string(hide_password=True)
    _emit(
        args,
        {"database": url, "head": list(state.head)},
        f"migrated {url} to {', '.join(state.head)}",
    )
    return 0


DEMO_CLIENTS: tuple[tuple[str, ClientKind, str | None, frozenset[str]], ...] = (
    ("demo-webshop", ClientKind.PARTNER, "webshop", frozenset(PARTNER_SCOPES)),
    ("demo-marketplace", ClientKind.PARTNER, "marketplace", frozenset(PARTNER_SCOPES)),
    ("demo-ops", ClientKind.INTERNAL, None, frozenset(PROCESS_SCOPES) | frozenset(SYSTEM_SCOPES)),
)


def demo_credentials_path(settings: Settings) -> Path:
    url = normalise_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).resolve().parent / "demo-credentials.json"
    return Path("var/demo-credentials.json").resolve()


def cmd_seed_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Demo item master and demo clients; secrets are generated here and kept in var/ (0600)."""
    gateway = build_gateway(settings)
    try:
        products = [
            Product(
                sku=sku,
                name=name,
                status=ProductStatus.ACTIVE,
                tax_class="standard",
                list_price=Money(amount=Decimal(price), currency="EUR"),
            )
            for sku, name, price in DEMO_PRODUCTS
        ]

        def demo_master(uow: UnitOfWork) -> None:
            upsert_products(uow, products)
            ensure_warehouse(uow, "WH", "Main warehouse")

        gateway.store.write_sync(demo_master)
        # Configured profiles first: a channel they define is not replaced by the demo one.
        gateway.channels.seed_sync(gateway.channel_profiles_config, actor="config")
        gateway.channels.seed_sync(DEMO_CHANNEL_PROFILES, actor="seed-demo")
        asyncio.run(_demo_opening_stock(gateway, [p.sku for p in products]))
        channels = {p.channel: gateway.channels.read_sync(p.channel) for p in DEMO_CHANNEL_PROFILES}
        credentials = _demo_clients(gateway, demo_credentials_path(settings))
    finally:
        gateway.database.dispose()
    issuer = str(settings.public_base_url).rstrip("/")
    human = [
        "demo item master: " + ", ".join(p.sku for p in products),
        "demo channel profiles: "
        + ", ".join(f"{c} (v{s.version})" for c, s in channels.items() if s is not None),
        "demo clients:",
    ]
    for entry in credentials:
        human.append(
            f"  {entry['name']:<17} client_id={entry['client_id']} "
            f"client_secret={entry['client_secret']}"
        )
    first = credentials[0]
    human.append(
        f"  token: curl -s -u {first['client_id']}:{first['client_secret']} "
        f"-d grant_type=client_credentials {issuer}/oauth/token"
    )
    _emit(
        args,
        {
            "products": [p.sku for p in products],
            "channel_profiles": sorted(channels),
            "clients": credentials,
        },
        "\n".join(human),
    )
    return 0


async def _demo_opening_stock(gateway: Gateway, skus: list[str]) -> None:
    """A receipt per demo SKU in the warehouse (once), and the count the gateway reserves on."""
    for sku in skus:
        await gateway.embedded_wms.adjust_stock(
            StockAdjustmentRequest(
                sku=sku,
                warehouse="WH",
                reason=AdjustmentReason.RECEIPT,
                reference="demo-opening-stock",
                delta=DEMO_ON_HAND,
            )
        )
    levels = await gateway.embedded_wms.stock_levels(warehouse="WH")
    await gateway.inventory.report_on_hand_many(
        {level.sku: level.on_hand for level in levels}, gateway.clock.now()
    )


def _demo_clients(gateway: Gateway, path: Path) -> list[dict[str, Any]]:
    saved: dict[str, dict[str, Any]] = {}
    if path.exists():
        saved = {entry["name"]: entry for entry in json.loads(path.read_text())}
    result: list[dict[str, Any]] = []
    for name, kind, channel, scopes in DEMO_CLIENTS:
        entry = saved.get(name)
        record = gateway.clients.get(entry["client_id"]) if entry else None
        if entry is None or record is None or not record.active:
            stored = gateway.channels.read_sync(channel) if channel else None
            record, secret = gateway.clients.add(
                name=name,
                kind=kind,
                scopes=scopes,
                channel=channel,
                throttle_tier=stored.profile.throttling_tier if stored else "standard",
            )
            entry = {"name": name, "client_id": record.client_id, "client_secret": secret}
        result.append({**entry, "kind": kind.value, "channel": channel})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(result, handle, indent=2)
    return result


def cmd_clients(args: argparse.Namespace, settings: Settings) -> int:
    gateway = build_gateway(settings)
    try:
        registry = gateway.clients
        if args.clients_command == "add":
            scopes = [s for part in args.scopes for s in part.replace(",", " ").split()]
            stored = gateway.channels.read_sync(args.channel) if args.channel else None
            tier = args.tier or (stored.profile.throttling_tier if stored else "standard")
            if args.channel and stored is None:
                print(
                    f"warning: channel {args.channel!r} has no channel profile yet; create it "
                    "before the client sends orders (docs/channel-profiles.md)",
                    file=sys.stderr,
                )
            record, secret = registry.add(
                name=args.name,
                kind=ClientKind(args.kind),
                scopes=scopes,
                channel=args.channel,
                throttle_tier=tier,
            )
            data = {**_client_json(record), "client_secret": secret}
            _emit(
                args,
                data,
                f"client_id={record.client_id}\nclient_secret={secret}\n"
                "(the secret is shown once; store it now)",
            )
        elif args.clients_command == "rotate-secret":
            secret = registry.rotate_secret(args.client_id)
            _emit(
                args,
                {"client_id": args.client_id, "client_secret": secret},
                f"client_id={args.client_id}\nclient_secret={secret}",
            )
        elif args.clients_command in ("disable", "enable"):
            change = registry.disable if args.clients_command == "disable" else registry.enable
            change(args.client_id)
            _emit(
                args,
                {"client_id": args.client_id, "status": args.clients_command + "d"},
                f"{args.client_id} {args.clients_command}d",
            )
        else:
            records = [_client_json(r) for r in registry.list()]
            _emit(
                args,
                {"clients": records},
                "\n".join(
                    f"{r['client_id']}  {r['kind']:<8} {r['channel'] or '-':<12} "
                    f"{'active' if r['active'] else 'disabled':<8} {r['name']}"
                    for r in records
                )
                or "no clients",
            )
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        gateway.database.dispose()
    return 0


def _client_json(record: ClientRecord) -> dict[str, Any]:
    return {
        "client_id": record.client_id,
        "name": record.name,
        "kind": record.kind.value,
        "channel": record.channel,
        "scopes": sorted(record.scopes),
        "throttle_tier": record.throttle_tier,
        "active": record.active,
    }


def cmd_operators(args: argparse.Namespace, settings: Settings) -> int:
    """`operators add|list|disable`: the people who sign in to the ops console."""
    gateway = build_gateway(settings)
    actor = "command-line"
    try:
        operators = operators_of(gateway)
        if args.operators_command == "add":
            password = os.environ.get("GATEWAY_OPERATOR_PASSWORD") if args.password_env else None
            if password is None:
                password = getpass.getpass(f"password for {args.username}: ")
                if getpass.getpass("again: ") != password:
                    print("error: the passwords differ", file=sys.stderr)
                    return 2
            added = operators.add_sync(args.username, password, display_name=args.name, actor=actor)
            _emit(args, _operator_json(added), f"operator {added.username} added")
        elif args.operators_command == "disable":
            disabled = operators.disable_sync(args.username, actor=actor)
            _emit(args, _operator_json(disabled), f"operator {disabled.username} disabled")
        else:
            found = [_operator_json(o) for o in operators.list_sync()]
            _emit(
                args,
                {"operators": found},
                "\n".join(
                    f"{o['username']:<24} {'active' if o['active'] else 'disabled':<8} "
                    f"{o['display_name']}"
                    for o in found
                )
                or "no operators",
            )
    except OperatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        gateway.database.dispose()
    return 0


def _operator_json(operator: Operator) -> dict[str, Any]:
    return {
        "username": operator.username,
        "display_name": operator.display_name,
        "active": operator.active,
        "created_at": operator.created_at.isoformat(),
        "disabled_at": operator.disabled_at.isoformat() if operator.disabled_at else None,
    }


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    gateway = build_gateway(settings)
    try:
        rotated = gateway.keys.rotate()
    finally:
        gateway.database.dispose()
    _emit(
        args,
        rotated,
        f"signing keys rotated: current={rotated['current']} next={rotated['next']} "
        f"retired={rotated['retired']}",
    )
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    database = Database(settings.database_url)
    try:
        state = migrations.migration_state(database)
    finally:
        database.dispose()
    if settings.channel_profiles:
        # Checked before uvicorn starts workers, for one clear message instead of a traceback each.
        load_profiles_config(settings.channel_profiles, known_tiers=settings.throttle_tiers)
    if settings.exception_routing:
        load_routing_config(settings.exception_routing)
    if settings.sla_monitors:
        load_sla_monitors(settings.sla_monitors)
    if not state.is_current:
        print(
            "the database is not migrated (run `retail-gateway migrate` first): "
            f"at {list(state.current) or 'nothing'}, code expects {list(state.head)}",
            file=sys.stderr,
        )
        return 2
    workers = args.workers or settings.workers
    # Several workers share their metrics through files in one directory (docs/metrics.md),
    # named before they start; one worker keeps them in memory.
    created_dir: str | None = None
    if workers > 1:
        directory, created = prepare_multiprocess_dir(settings.metrics_multiproc_dir)
        created_dir = directory if created else None
        os.environ[MULTIPROC_ENV] = directory
    else:
        os.environ.pop(MULTIPROC_ENV, None)
    try:
        uvicorn.run(
            "gateway:create_app",
            factory=True,
            host=args.host or settings.host,
            port=args.port or settings.port,
            workers=workers,
            # A worker answers the supervisor's health check only once it has imported the
            # gateway: on a busy host that takes longer than uvicorn's 5 s default, and a worker
            # killed for it would be restarted (and killed) again and again.
            timeout_worker_healthcheck=60,
            log_config=None,
            proxy_headers=settings.forwarded_allow_ips is not None,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )
    finally:
        if created_dir is not None:
            remove_multiprocess_dir(created_dir)
    return 0


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    """`backup FILE` / `restore FILE`: the embedded SQLite store (gateway_infra/backup.py)."""
    database = Database(settings.database_url)
    try:
        if args.command == "backup":
            result = backup_store.backup(database, Path(args.file))
        else:
            result = backup_store.restore(database, Path(args.file), replace=args.replace)
    except backup_store.BackupError as exc:
        print(f"{args.command} refused: {exc}", file=sys.stderr)
        return 2
    finally:
        database.dispose()
    head = migrations.head_revisions()
    data = {
        "database": str(result.database),
        "backup": str(result.backup),
        "revisions": list(result.revisions),
        "key_file": str(result.key_file) if result.key_file else None,
        "at_head": set(result.revisions) == set(head),
    }
    done = "backed up" if args.command == "backup" else "restored"
    human = (
        f"{done} {result.database} {'to' if args.command == 'backup' else 'from'} {result.backup}"
    )
    human += f" (migrations {', '.join(result.revisions)})"
    if result.key_file:
        human += f"; key-encryption secret at {result.key_file}"
    if args.command == "restore" and not data["at_head"]:
        human += "; run `retail-gateway migrate` before serving it"
    _emit(args, data, human)
    return 0


def cmd_delivery(args: argparse.Namespace, settings: Settings) -> int:
    """`webhooks ...` and `deliveries ...` (gateway_infra/delivery/cli.py)."""
    gateway = build_gateway(settings)
    try:
        code, data, human = delivery_cli.run(args, gateway.webhooks)
    finally:
        gateway.database.dispose()
    if code != 0:
        print(f"error: {human}", file=sys.stderr)
        return code
    _emit(args, data, human)
    return 0


def cmd_purge_personal_data(args: argparse.Namespace, settings: Settings) -> int:
    """Remove buyers' personal data from orders closed longer than the retention period."""
    gateway = build_gateway(settings)
    try:
        assert gateway.personal_data is not None
        report = gateway.personal_data.run_sync(dry_run=args.dry_run)
    finally:
        gateway.database.dispose()
    verb = "would purge" if report.dry_run else "purged"
    _emit(
        args,
        report.as_json(),
        f"{verb} personal data of {report.orders} orders closed before "
        f"{report.cutoff.isoformat()} ({report.events} events, {report.texts} texts masked)",
    )
    return 0


OPENAPI_DOCUMENTS = {
    "system": "/system",
    "process": "/process",
    "partner-v1": "/partner/v1",
    "partner-v2": "/partner/v2",
}


async def openapi_documents(settings: Settings | None = None) -> dict[str, dict[str, Any]]:
    """Each app's OpenAPI document as the gateway serves it at `<mount>/openapi.json`; by
    default with the settings the committed documents describe (every default)."""
    settings = settings or contract_documents.documented_settings()
    gateway = build_gateway(settings)
    try:
        transport = httpx.ASGITransport(app=build_app(gateway, run_background=False))
        async with httpx.AsyncClient(transport=transport, base_url=gateway.issuer) as client:
            documents: dict[str, dict[str, Any]] = {}
            for name, mount in OPENAPI_DOCUMENTS.items():
                response = await client.get(f"{mount}/openapi.json")
                response.raise_for_status()
                documents[name] = response.json()
    finally:
        await gateway.aclose()
    return documents


def document_sunsets(settings: Settings) -> dict[str, date]:
    """The documents that are a deprecated version as a whole, and the day each sunsets."""
    if settings.partner_v1_deprecation is None or settings.partner_v1_sunset is None:
        return {}
    return {"partner-v1": settings.partner_v1_sunset.date()}


def cmd_contracts(args: argparse.Namespace, settings: Settings) -> int:
    """`contracts export|check` (gateway_infra/contracts_cli.py); the environment plays no part."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the in-process document requests
    code, data, human = contracts_cli.run(
        args,
        served=lambda: asyncio.run(openapi_documents()),
        sunsets=document_sunsets(contract_documents.documented_settings()),
    )
    if code == 2:
        print(f"error: {human}", file=sys.stderr)
        return code
    _emit(args, data, human)
    return code


def cmd_settings(args: argparse.Namespace, settings: Settings) -> int:
    if args.markdown:
        print(settings_reference(), end="")
        return 0
    values = settings.model_dump(mode="json")
    for secret in SECRET_SETTINGS:
        if values.get(secret):
            values[secret] = "***"
    _emit(args, values, "\n".join(f"{k}={v}" for k, v in values.items()))
    return 0


def cmd_make_migration(args: argparse.Namespace, settings: Settings) -> int:
    database = Database(settings.database_url)
    try:
        migrations.make_revision(database, ALL_METADATA, args.message)
    finally:
        database.dispose()
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="retail-gateway", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the gateway over HTTP (uvicorn)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(handler=cmd_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--json", action="store_true", help="print the result as JSON")
    migrate.set_defaults(handler=cmd_migrate)

    seed = commands.add_parser(
        "seed-demo", help="load demo item master, channel profiles and clients (idempotent)"
    )
    seed.add_argument("--json", action="store_true", help="print the result as JSON")
    seed.set_defaults(handler=cmd_seed_demo)

    clients = commands.add_parser("clients", help="manage OAuth2 clients")
    clients_commands = clients.add_subparsers(dest="clients_command", required=True)
    add = clients_commands.add_parser("add", help="register a client; prints its secret once")
    add.add_argument("name")
    add.add_argument("--kind", choices=[k.value for k in ClientKind], required=True)
    add.add_argument("--channel", help="the channel a partner client acts for")
    add.add_argument("--scopes", nargs="+", required=True, help="scopes, space or comma separated")
    add.add_argument(
        "--tier",
        help="throttling tier (settings.throttle_tiers); default: the channel profile's tier",
    )
    for name, help_text in (
        ("disable", "stop a client; its tokens fail within a second"),
        ("enable", "allow a disabled client again"),
        ("rotate-secret", "issue a new secret; the old one stops working"),
    ):
        sub = clients_commands.add_parser(name, help=help_text)
        sub.add_argument("client_id")
    clients_commands.add_parser("list", help="list clients")
    for sub in clients_commands.choices.values():
        sub.add_argument("--json", action="store_true", help="print the result as JSON")
    clients.set_defaults(handler=cmd_clients)

    ops = commands.add_parser("operators", help="manage the people who sign in to the ops console")
    ops_commands = ops.add_subparsers(dest="operators_command", required=True)
    ops_add = ops_commands.add_parser("add", help="add an operator (asks for the password)")
    ops_add.add_argument("username")
    ops_add.add_argument("--name", help="the name the console shows; default: the username")
    ops_add.add_argument(
        "--password-env",
        action="store_true",
        help="read the password from GATEWAY_OPERATOR_PASSWORD instead of asking",
    )
    ops_disable = ops_commands.add_parser("disable", help="stop an operator; ends their sessions")
    ops_disable.add_argument("username")
    ops_commands.add_parser("list", help="list operators")
    for sub in ops_commands.choices.values():
        sub.add_argument("--json", action="store_true", help="print the result as JSON")
    ops.set_defaults(handler=cmd_operators)

    keys = commands.add_parser("keys", help="manage token signing keys")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    rotate = keys_commands.add_parser("rotate", help="retire current, promote next, create next")
    rotate.add_argument("--json", action="store_true", help="print the result as JSON")
    keys.set_defaults(handler=cmd_keys)

    show = commands.add_parser("settings", help="print the effective settings")
    show.add_argument("--json", action="store_true", help="print the settings as JSON")
    show.add_argument("--markdown", action="store_true", help="print the settings reference")
    show.set_defaults(handler=cmd_settings)

    purge = commands.add_parser(
        "purge-personal-data",
        help="remove buyers' personal data from orders closed longer than the retention period",
    )
    purge.add_argument("--dry-run", action="store_true", help="count, change nothing")
    purge.add_argument("--json", action="store_true", help="print the result as JSON")
    purge.set_defaults(handler=cmd_purge_personal_data)

    delivery_cli.add_commands(commands, cmd_delivery)
    backup = commands.add_parser(
        "backup", help="copy the embedded SQLite database to FILE while the gateway runs"
    )
    backup.add_argument("file", help="the backup file to write (replaced if it exists)")
    restore = commands.add_parser(
        "restore", help="put a backup FILE in place of the embedded SQLite database"
    )
    restore.add_argument("file", help="a file written by `retail-gateway backup`")
    restore.add_argument(
        "--replace", action="store_true", help="overwrite an existing database (gateway stopped)"
    )
    for sub in (backup, restore):
        sub.add_argument("--json", action="store_true", help="print the result as JSON")
        sub.set_defaults(handler=cmd_backup)
    contracts_cli.add_commands(commands, cmd_contracts)

    revision = commands.add_parser("make-migration", help="(developers) autogenerate a migration")
    revision.add_argument("-m", "--message", required=True)
    revision.set_defaults(handler=cmd_make_migration)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        return handler(args, settings)
    except ChannelProfilesConfigError as exc:
        print(f"error: GATEWAY_CHANNEL_PROFILES: {exc}", file=sys.stderr)
        return 2
    except ExceptionRoutingConfigError as exc:
        print(f"error: GATEWAY_EXCEPTION_ROUTING: {exc}", file=sys.stderr)
        return 2
    except SlaMonitorsConfigError as exc:
        print(f"error: GATEWAY_SLA_MONITORS: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
