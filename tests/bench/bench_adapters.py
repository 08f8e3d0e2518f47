"""Calls per second and latency of the system API adapters (a benchmark, not a test).

    .venv/bin/python -m tests.bench.bench_adapters [--calls 2000] [--concurrency 8]

Runs the embedded ERP adapter on a fresh SQLite file: get_product (a read) and
create_sales_order (validation plus a write of the document and its outbox event).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

from contracts import Money, OrderLine, Product, ProductStatus
from contracts.erp import SalesOrderRequest
from gateway import build_gateway
from gateway_infra import schema_migrations
from gateway_infra.database import Database
from gateway_infra.settings import Settings
from system_api.erp.embedded import upsert_products
from system_api.erp.port import ErpPort


async def measure(
    name: str, call: Callable[[], Awaitable[object]], calls: int, concurrency: int
) -> None:
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with semaphore:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(f"{name:<34} {calls / elapsed:>9.0f} calls/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")


async def bench_erp(erp: ErpPort, label: str, calls: int, concurrency: int) -> None:
    def order() -> SalesOrderRequest:
        return SalesOrderRequest(
            reference=f"bench-{uuid.uuid4().hex}",
            channel="webshop",
            currency="EUR",
            lines=[
                OrderLine(
                    line_id="1",
                    sku="MUG-RED-350",
                    quantity=1,
                    unit_price=Money(amount=Decimal("12.90"), currency="EUR"),
                )
            ],
        )

    await measure(
        f"{label} get_product", lambda: erp.get_product("MUG-RED-350"), calls, concurrency
    )
    await measure(
        f"{label} create_sales_order",
        lambda: erp.create_sales_order(order()),
        calls,
        concurrency,
    )


async def main(calls: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        database = Database(url)
        schema_migrations.upgrade(database)
        database.dispose()
        gateway = build_gateway(
            Settings(database_url=url, key_encryption_key="bench-only-secret-of-32-characters-xx")
        )
        gateway.store.write_sync(
            lambda uow: upsert_products(
                uow,
                [
                    Product(
                        sku="MUG-RED-350",
                        name="Mug",
                        status=ProductStatus.ACTIVE,
                        tax_class="standard",
                        list_price=Money(amount=Decimal("12.90"), currency="EUR"),
                    )
                ],
            )
        )
        print(f"{calls} calls each, {concurrency} in flight, SQLite file, one process")
        await bench_erp(gateway.embedded_erp, "embedded", calls, concurrency)
        await gateway.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.calls, arguments.concurrency))
