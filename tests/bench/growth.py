"""Growth figures of the benchmark: how the gateway's background work scales with data.

    .venv/bin/python -m tests.bench.growth publication --skus 100000 --database sqlite
    .venv/bin/python -m tests.bench.growth outbox --events 20000 --database postgres
    .venv/bin/python -m tests.bench.growth purge --records 50000 --database sqlite

Each figure runs in a process of its own (so its peak memory is its own) and prints one JSON
line; run_all() runs them all for `make bench`.

- publication: N SKUs in stock, 6 channels with different availability policies. Time, CPU time
  of this process (the gateway's side; a PostgreSQL server's work is not in it) and peak memory
  (resident set growth) of the first full publication (N x 6 values), then of a full sweep after
  1% of the SKUs changed (only those are sent) and of one after nothing changed.
- outbox: N committed events; time for the relay (the outbox sequencer) to give all of them
  their feed positions, in events/s.
- purge: N idempotency records past their retention; time for the purge to delete them.
- events: N sequenced events past their retention (the events table); time for the event purge
  to delete all but the newest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, select, text

from contracts import EventEnvelope
from contracts.channel import AvailabilityMode, AvailabilityPolicy, ChannelProfile
from gateway import Gateway
from gateway_infra.clock import ManualClock
from gateway_infra.database import normalise_url
from gateway_infra.outbox import Sequencer
from gateway_infra.tables import outbox
from partner_api.tables import idempotency_keys
from process_api.inventory import repository as inventory_repo
from tests.conftest import make_settings, migrate, start_gateway

CHANNELS = (
    ChannelProfile(
        channel="webshop",
        name="Webshop",
        currency="EUR",
        availability=AvailabilityPolicy(mode=AvailabilityMode.SHARED_POOL, safety_stock=2),
    ),
    ChannelProfile(
        channel="marketplace",
        name="Marketplace",
        currency="EUR",
        availability=AvailabilityPolicy(
            mode=AvailabilityMode.PERCENTAGE, percentage=Decimal("80"), safety_stock=2
        ),
    ),
    ChannelProfile(
        channel="outlet",
        name="Outlet",
        currency="EUR",
        availability=AvailabilityPolicy(
            mode=AvailabilityMode.RING_FENCED, ring_fenced_quantity=50, buffer=1
        ),
    ),
    ChannelProfile(
        channel="b2b",
        name="B2B portal",
        currency="EUR",
        availability=AvailabilityPolicy(mode=AvailabilityMode.SHARED_POOL, cap=500),
    ),
    ChannelProfile(
        channel="social",
        name="Social shop",
        currency="EUR",
        availability=AvailabilityPolicy(
            mode=AvailabilityMode.PERCENTAGE, percentage=Decimal("30"), floor=3
        ),
    ),
    ChannelProfile(
        channel="nordic",
        name="Nordic marketplace",
        currency="SEK",
        availability=AvailabilityPolicy(mode=AvailabilityMode.SHARED_POOL, safety_stock=5),
    ),
)


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    base = os.environ.get("BENCH_DATABASE_URL") or os.environ["TEST_DATABASE_URL"]
    # A database of its own on that server, not a schema in the shared one: the publication's
    # advisory lock is per database, and a bench publishing 100k SKUs holds it for minutes.
    name = f"gateway_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield normalise_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    """Linux: writing 5 to clear_refs resets the peak resident set (VmHWM) to the current one."""
    Path("/proc/self/clear_refs").write_text("5")


def _gateway(url: str) -> Gateway:
    migrate(url)
    return start_gateway(make_settings(url), ManualClock(datetime.now(UTC)))


async def publication(url: str, skus: int) -> dict[str, Any]:
    gateway = _gateway(url)
    try:
        gateway.channels.seed_sync(CHANNELS, actor="bench")
        now = gateway.clock.now()
        counts = {f"SKU-{n:07d}": 10 + n % 200 for n in range(skus)}
        gateway.store.write_sync(lambda uow: inventory_repo.report_on_hand_many(uow, counts, now))

        async def timed(label: str) -> dict[str, Any]:
            _reset_peak()
            before = _rss_kib("VmRSS")
            started, cpu_started = time.perf_counter(), time.process_time()
            published = await gateway.inventory.publish_changes()
            seconds = time.perf_counter() - started
            return {
                f"{label}_seconds": round(seconds, 3),
                f"{label}_cpu_seconds": round(time.process_time() - cpu_started, 3),
                f"{label}_sent": len(published),
                f"{label}_peak_mib": round((_rss_kib("VmHWM") - before) / 1024, 1),
            }

        result: dict[str, Any] = {"skus": skus, "channels": len(CHANNELS)}
        result.update(await timed("full"))
        changed = {sku: count + 7 for sku, count in list(counts.items())[::100]}
        later = now + timedelta(minutes=1)
        gateway.store.write_sync(
            lambda uow: inventory_repo.report_on_hand_many(uow, changed, later)
        )
        result["changed_skus"] = len(changed)
        result.update(await timed("after_1pct_change"))
        result.update(await timed("unchanged"))
        return result
    finally:
        await gateway.aclose()


def _event_rows(count: int) -> list[dict[str, Any]]:
    rows = []
    for n in range(count):
        event = EventEnvelope(
            type="order.accepted",
            occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
            source="bench",
            subject=f"order/{n}",
        )
        rows.append(
            {
                "event_id": str(event.id),
                "type": event.type,
                "version": 1,
                "source": event.source,
                "subject": event.subject,
                "channel": "webshop",
                "correlation_id": None,
                "causation_id": None,
                "occurred_at": event.occurred_at,
                "data": event.data,
            }
        )
    return rows


async def outbox_relay(url: str, events: int) -> dict[str, Any]:
    gateway = _gateway(url)
    try:
        rows = _event_rows(events)
        gateway.database.run_write(lambda conn: conn.execute(insert(outbox), rows))
        sequencer = Sequencer(gateway.database)
        started = time.perf_counter()
        sequenced = 0
        while numbered := await sequencer.run_once():
            sequenced += numbered
        seconds = time.perf_counter() - started
        return {
            "events": sequenced,
            "seconds": round(seconds, 3),
            "events_per_second": round(sequenced / seconds),
        }
    finally:
        await gateway.aclose()


async def idempotency_purge(url: str, records: int) -> dict[str, Any]:
    gateway = _gateway(url)
    try:
        past = gateway.clock.now() - timedelta(days=2)
        rows = [
            {
                "client_id": f"client-{n % 50}",
                "key": f"key-{n}",
                "fingerprint": "0" * 64,
                "state": "completed",
                "status_code": 201,
                "response_headers": {"content-type": "application/json"},
                "response_body": b'{"order_id":"ord_x"}' * 10,
                "created_at": past,
                "completed_at": past,
                "expires_at": past + timedelta(days=1),
            }
            for n in range(records)
        ]
        gateway.database.run_write(lambda conn: conn.execute(insert(idempotency_keys), rows))
        started = time.perf_counter()
        purged = 0
        while deleted := await gateway.idempotency.purge():
            purged += deleted
        seconds = time.perf_counter() - started
        left = gateway.database.run_read(
            lambda conn: conn.execute(select(func.count()).select_from(idempotency_keys)).scalar()
        )
        return {
            "records": purged,
            "left": left,
            "seconds": round(seconds, 3),
            "records_per_second": round(purged / seconds),
        }
    finally:
        await gateway.aclose()


async def event_purge(url: str, events: int) -> dict[str, Any]:
    gateway = _gateway(url)
    try:
        rows = _event_rows(events)
        for position, row in enumerate(rows, start=1):
            row["position"] = position
        gateway.database.run_write(lambda conn: conn.execute(insert(outbox), rows))
        clock = gateway.clock
        assert isinstance(clock, ManualClock)
        clock.advance(timedelta(days=gateway.settings.event_retention_days + 1))
        started = time.perf_counter()
        purged = await gateway.event_purge.purge()
        seconds = time.perf_counter() - started
        left = gateway.database.run_read(
            lambda conn: conn.execute(select(func.count()).select_from(outbox)).scalar()
        )
        return {
            "events": purged,
            "left": left,
            "seconds": round(seconds, 3),
            "events_per_second": round(purged / seconds),
        }
    finally:
        await gateway.aclose()


def run_one(argv: list[str]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.bench.growth", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if result.returncode != 0:
        return {"error": result.stderr[-2000:]}
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def run_all(kinds: list[str]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    print("\ngrowth figures")
    for kind in kinds:
        for skus in (10_000, 100_000):
            name = f"{kind} publication {skus} SKUs x {len(CHANNELS)} channels"
            figures[name] = run_one(["publication", "--skus", str(skus), "--database", kind])
            print(f"  {name}: {figures[name]}", flush=True)
        name = f"{kind} outbox relay"
        figures[name] = run_one(["outbox", "--events", "20000", "--database", kind])
        print(f"  {name}: {figures[name]}", flush=True)
        name = f"{kind} idempotency purge"
        figures[name] = run_one(["purge", "--records", "50000", "--database", kind])
        print(f"  {name}: {figures[name]}", flush=True)
        name = f"{kind} event purge"
        figures[name] = run_one(["events", "--events", "50000", "--database", kind])
        print(f"  {name}: {figures[name]}", flush=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("figure", choices=["publication", "outbox", "purge", "events"])
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--records", type=int, default=50_000)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="gateway-growth-") as tmp,
        database(args.database, Path(tmp)) as url,
    ):
        if args.figure == "publication":
            result = asyncio.run(publication(url, args.skus))
        elif args.figure == "outbox":
            result = asyncio.run(outbox_relay(url, args.events))
        elif args.figure == "events":
            result = asyncio.run(event_purge(url, args.events))
        else:
            result = asyncio.run(idempotency_purge(url, args.records))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
