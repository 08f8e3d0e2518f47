"""Composition root of the Retail Sync Gateway: builds the three layer apps, mounts them, and
holds the `retail-gateway` command line (serve, migrate, seed-demo)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import MetaData, text

from contracts import Money, Product, ProductStatus
from gateway_infra import schema_migrations as migrations
from gateway_infra.clock import Clock, SystemClock
from gateway_infra.database import Database
from gateway_infra.http import install_common_http
from gateway_infra.logging import configure_logging
from gateway_infra.problems import ProblemType, problem_response
from gateway_infra.scheduler import Scheduler
from gateway_infra.settings import Settings, settings_reference
from gateway_infra.tables import metadata as infra_metadata
from gateway_infra.unit_of_work import Store
from partner_api.app import create_partner_app
from process_api.app import create_process_app
from process_api.order_to_cash.service import OrderService
from partner_api.tables import metadata as partner_metadata
from process_api.tables import metadata as process_metadata
from system_api.app import create_system_app
from system_api.erp.embedded import EmbeddedErp, upsert_products
from system_api.erp.http_client import HttpErpClient
from system_api.erp.port import ErpPort
from system_api.tables import metadata as system_metadata

ALL_METADATA: tuple[MetaData, ...] = (
    infra_metadata,
    system_metadata,
    process_metadata,
    partner_metadata,
)
SECRET_SETTINGS: tuple[str, ...] = ()
NOT_READY = ProblemType("not-ready", "The gateway is not ready to serve", 503)


@dataclass
class Gateway:
    """Everything one gateway process runs on, wired together."""

    settings: Settings
    clock: Clock
    database: Database
    store: Store
    scheduler: Scheduler
    embedded_erp: EmbeddedErp
    erp: ErpPort
    orders: OrderService
    closers: list[Callable[[], Any]] = field(default_factory=list)

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
    database = Database(
        settings.database_url,
        busy_timeout_ms=settings.db_busy_timeout_ms,
        pool_size=settings.db_pool_size,
    )
    store = Store(database, clock)
    scheduler = Scheduler(store, lease=timedelta(seconds=settings.scheduler_lease_seconds))
    embedded_erp = EmbeddedErp(store, price_tolerance=settings.erp_price_tolerance)
    closers: list[Callable[[], Any]] = []
    erp: ErpPort
    if settings.system_api_transport == "http":
        http_erp = HttpErpClient(
            settings.system_api_url, timeout_seconds=settings.system_api_timeout_seconds
        )
        closers.append(http_erp.aclose)
        erp = http_erp
    else:
        erp = embedded_erp
    orders = OrderService(store, erp)
    orders.register_timers(scheduler)
    return Gateway(
        settings=settings,
        clock=clock,
        database=database,
        store=store,
        scheduler=scheduler,
        embedded_erp=embedded_erp,
        erp=erp,
        orders=orders,
        closers=closers,
    )


def build_app(gateway: Gateway, *, run_background: bool = True) -> FastAPI:
    """The root app: health probes and the three layers mounted under their prefixes."""
    settings = gateway.settings

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
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

    app = FastAPI(
        title="Retail Sync Gateway",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_common_http(app, max_body_bytes=settings.max_body_bytes)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        return await readiness(gateway)

    app.mount("/system", create_system_app(settings=settings, erp=gateway.embedded_erp))
    app.mount("/process", create_process_app(settings=settings, orders=gateway.orders))
    app.mount("/partner/v1", create_partner_app(settings=settings, version="v1"))
    return app


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
        "erp": {"adapter": getattr(gateway.erp, "name", type(gateway.erp).__name__)}
    }
    if not ready:
        return problem_response(NOT_READY, "see checks", checks=checks)
    return JSONResponse({"status": "ready", "checks": checks})


def create_app() -> FastAPI:
    """ASGI factory for uvicorn (`gateway:create_app`), configured from the environment."""
    settings = Settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    return build_app(build_gateway(settings))


# ---------------------------------------------------------------- command line

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
    database = Database(settings.database_url)
    try:
        migrations.upgrade(database)
        state = migrations.migration_state(database)
    finally:
        database.dispose()
    _emit(
        args,
        {"database": database.url.render_as_string(hide_password=True), "head": list(state.head)},
        f"migrated {database.url.render_as_string(hide_password=True)} to {', '.join(state.head)}",
    )
    return 0


def cmd_seed_demo(args: argparse.Namespace, settings: Settings) -> int:
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
        gateway.store.write_sync(lambda uow: upsert_products(uow, products))
    finally:
        gateway.database.dispose()
    _emit(
        args,
        {"products": [p.sku for p in products]},
        "demo item master: " + ", ".join(p.sku for p in products),
    )
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    database = Database(settings.database_url)
    try:
        state = migrations.migration_state(database)
    finally:
        database.dispose()
    if not state.is_current:
        print(
            "the database is not migrated (run `retail-gateway migrate` first): "
            f"at {list(state.current) or 'nothing'}, code expects {list(state.head)}",
            file=sys.stderr,
        )
        return 2
    uvicorn.run(
        "gateway:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers or settings.workers,
        log_config=None,
        proxy_headers=False,
    )
    return 0


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

    seed = commands.add_parser("seed-demo", help="load demo item master data (idempotent)")
    seed.add_argument("--json", action="store_true", help="print the result as JSON")
    seed.set_defaults(handler=cmd_seed_demo)

    show = commands.add_parser("settings", help="print the effective settings")
    show.add_argument("--json", action="store_true", help="print the settings as JSON")
    show.add_argument("--markdown", action="store_true", help="print the settings reference")
    show.set_defaults(handler=cmd_settings)

    revision = commands.add_parser("make-migration", help="(developers) autogenerate a migration")
    revision.add_argument("-m", "--message", required=True)
    revision.set_defaults(handler=cmd_make_migration)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    return handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())
