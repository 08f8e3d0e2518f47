"""CPU per authenticated partner read or order, in process: the gateway against raw FastAPI.

    .venv/bin/python -m tests.bench.inproc                 # 5,000 reads, 3 alternating rounds
    .venv/bin/python -m tests.bench.inproc --reads 20000 --rounds 5
    .venv/bin/python -m tests.bench.inproc --profile gateway   # cProfile of one gateway round
    .venv/bin/python -m tests.bench.inproc --database-url postgresql://...  # an empty database
    .venv/bin/python -m tests.bench.inproc --scenario intake --reads 300 --warmup 50
        # orders instead of reads: POST /partner/v2/orders, a new Idempotency-Key each time

CPU time per read moves by 20-30% on a loaded machine. For a figure that does not, count
instructions with valgrind (about 20 times slower; the setup alone takes about a minute), twice
with different --reads, and divide the difference by the difference of reads:

    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
        .venv/bin/python -m tests.bench.inproc --only gateway --rounds 1 --warmup 200 \
        --reads 2200 $QUIET   # and again with --reads 200
    QUIET="--env GATEWAY_SCHEDULER_ENABLED=false --env GATEWAY_WEBHOOKS_ENABLED=false
           --env GATEWAY_OUTBOX_SEQUENCER_POLL_SECONDS=60
           --env GATEWAY_AVAILABILITY_READ_CACHE_SECONDS=60"

(QUIET keeps the background work and the cache expiry, which come by the clock, from running
twenty times as often per read as they would at full speed.)

Builds the gateway as `retail-gateway serve` does (`gateway.create_app()`, configured from the
environment, its lifespan started) on a migrated store seeded as `make bench` seeds it (one SKU
in stock, the demo channels, a partner client with limits far above the load), takes a real access
token from the token endpoint, then calls the ASGI app directly with a minimal HTTP scope for
`GET /partner/v2/inventory?sku=MUG-RED-350` with that bearer token, one request after the other on
one event loop. tests/bench/raw_app.py answers the same GET the same way. No sockets, no HTTP
parsing, no client: what is left is the app's own work, the part the gateway adds to raw FastAPI.

Rounds alternate gateway and raw; each reports CPU microseconds per read (time.process_time over
the round, so background tasks of the gateway that ran meanwhile are included) and wall
microseconds. Every answer's status is checked (200, or the run fails). The last line is the best
round of each and the ratio raw / gateway, the figure `make bench` compares over HTTP
(BENCHMARKS.md: the read target is a ratio of 50%). Answers from the availability read cache are
the common case here, as under wrk: the cache holds an answer for up to a second, so about one
read a second goes to the database.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import gc
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message

SKU = "MUG-RED-350"
READ_PATH = "/partner/v2/inventory"
READ_QUERY = f"sku={SKU}".encode()
ORDERS_PATH = "/partner/v2/orders"


def _scope(
    method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]]
) -> dict[str, Any]:
    """What uvicorn hands an app for one HTTP/1.1 request (state: the lifespan's, copied)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(b"host", b"127.0.0.1:8000"), *headers],
        "state": {},
    }


async def call(
    app: ASGIApp,
    method: str,
    path: str,
    *,
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One request through the ASGI app: status, headers and body of its answer."""
    messages: list[Message] = []
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        messages.append(message)

    await app(_scope(method, path, query, headers or []), receive, send)
    start = messages[0]
    return (
        start["status"],
        list(start.get("headers", [])),
        b"".join(m.get("body", b"") for m in messages[1:]),
    )


def read_loop(app: ASGIApp, headers: list[tuple[bytes, bytes]]) -> Callable[[int], Awaitable[None]]:
    """Issues `n` reads one after the other, with as little work around the app as possible."""
    scope_template = _scope("GET", READ_PATH, READ_QUERY, headers)
    request: Message = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> Message:
        return request

    async def run(n: int) -> None:
        status = 0

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        for _ in range(n):
            status = 0
            await app(dict(scope_template, state={}), receive, send)
            if status != 200:
                raise RuntimeError(f"read answered {status}")

    return run


def intake_loop(
    app: ASGIApp, headers: list[tuple[bytes, bytes]], run_id: str
) -> Callable[[int], Awaitable[None]]:
    """Submits `n` orders one after the other, each with a new Idempotency-Key and channel order
    id (the `intake` scenario of `make bench`); every answer must be 201."""
    from tests.bench.bench_http import ORDER_BODY

    orders = 0

    async def run(n: int) -> None:
        nonlocal orders
        for _ in range(n):
            orders += 1
            key = f"{run_id}-{orders}"
            body = (ORDER_BODY % key).encode()
            status, _, answer = await call(
                app,
                "POST",
                ORDERS_PATH,
                headers=[
                    *headers,
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"idempotency-key", f'"{key}"'.encode()),
                ],
                body=body,
            )
            if status != 201:
                raise RuntimeError(f"order answered {status}: {answer[:300]!r}")

    return run


@contextlib.asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Runs the app's lifespan (start-up before, shut-down after) as uvicorn does."""
    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message] = asyncio.Queue()

    async def run() -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        await app(scope, to_app.get, from_app.put)

    task = asyncio.create_task(run())
    await to_app.put({"type": "lifespan.startup"})
    started = await from_app.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"start-up failed: {started}")
    try:
        yield
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        await from_app.get()
        await task


def prepare_store(url: str) -> tuple[str, str]:
    """The store `make bench` uses: migrated, the SKU in stock, demo channels, a partner client."""
    from tests.bench.bench_http import prepare

    return prepare(url)


def gateway_environment(url: str, overrides: list[str]) -> None:
    from tests.bench.bench_http import TIERS
    from tests.conftest import TEST_ENVIRONMENT

    for name in [n for n in os.environ if n.startswith("GATEWAY_")]:
        del os.environ[name]
    os.environ.update(TEST_ENVIRONMENT)
    os.environ["DATABASE_URL"] = url
    os.environ["GATEWAY_THROTTLE_TIERS"] = json.dumps(TIERS)
    os.environ["GATEWAY_LOG_LEVEL"] = "WARNING"
    for assignment in overrides:
        name, _, value = assignment.partition("=")
        os.environ[name] = value


async def token_of(app: ASGIApp, client_id: str, secret: str) -> str:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    status, _, body = await call(
        app,
        "POST",
        "/oauth/token",
        headers=[
            (b"authorization", f"Basic {basic}".encode()),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", b"29"),
        ],
        body=b"grant_type=client_credentials",
    )
    if status != 200:
        raise RuntimeError(f"token endpoint answered {status}: {body!r}")
    return str(json.loads(body)["access_token"])


def measure(
    loop: asyncio.AbstractEventLoop, run: Callable[[int], Awaitable[None]], n: int
) -> tuple[float, float]:
    """CPU and wall microseconds per read over `n` reads."""
    cpu, wall = time.process_time(), time.perf_counter()
    loop.run_until_complete(run(n))
    return (
        (time.process_time() - cpu) / n * 1e6,
        (time.perf_counter() - wall) / n * 1e6,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario",
        choices=("read", "intake"),
        default="read",
        help="read (GET availability) or intake (POST an order with a new key); default read",
    )
    parser.add_argument("--reads", type=int, default=5000, help="requests per round (5000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    parser.add_argument("--warmup", type=int, default=1000, help="reads before measuring (1000)")
    parser.add_argument("--database-url", help="an empty database (default: SQLite in a temp dir)")
    parser.add_argument(
        "--profile",
        choices=("gateway", "raw"),
        help="after the rounds, one round under cProfile: top functions and calls per read",
    )
    parser.add_argument(
        "--only", choices=("gateway", "raw"), help="measure one app only (e.g. under py-spy)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the gateway (e.g. GATEWAY_SCHEDULER_ENABLED=false); repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print the rounds as JSON too")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="inproc-") as workdir:
        url = args.database_url or f"sqlite:///{Path(workdir) / 'bench.db'}"
        client_id, secret = prepare_store(url)
        gateway_environment(url, args.env)
        import gateway
        from tests.bench import raw_app

        app = gateway.create_app()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        served = lifespan(app)
        loop.run_until_complete(served.__aenter__())
        try:
            token = loop.run_until_complete(token_of(app, client_id, secret))
            bearer = [(b"authorization", f"Bearer {token}".encode())]
            if args.scenario == "intake":
                runs = read_loops = {
                    "gateway": intake_loop(app, bearer, "gateway"),
                    "raw": intake_loop(raw_app.app, [], "raw"),
                }
            else:
                runs = read_loops = {
                    "gateway": read_loop(app, bearer),
                    "raw": read_loop(raw_app.app, []),
                }
            if args.only:
                runs = {args.only: runs[args.only]}
            for run in runs.values():
                loop.run_until_complete(run(args.warmup))
            results: dict[str, list[tuple[float, float]]] = {"gateway": [], "raw": []}
            for round_ in range(1, args.rounds + 1):
                for name, run in runs.items():
                    gc.collect()
                    cpu, wall = measure(loop, run, args.reads)
                    results[name].append((cpu, wall))
                    print(
                        f"round {round_} {name:<8} {cpu:7.1f} us CPU/read  {wall:7.1f} us wall/read"
                    )
            if not args.only:
                best_gateway = min(cpu for cpu, _ in results["gateway"])
                best_raw = min(cpu for cpu, _ in results["raw"])
                ratios = sorted(
                    raw[0] / gw[0]
                    for gw, raw in zip(results["gateway"], results["raw"], strict=True)
                )
                median_ratio = statistics.median(ratios)
                median_raw = statistics.median(cpu for cpu, _ in results["raw"])
                print(
                    f"best: gateway {best_gateway:.1f} us/read, raw {best_raw:.1f} us/read, "
                    f"ratio raw/gateway {best_raw / best_gateway:.1%} "
                    f"({args.reads} reads per round)"
                )
                print(
                    f"median of the rounds' ratios: {median_ratio:.1%} "
                    f"(min {ratios[0]:.1%}, max {ratios[-1]:.1%}); gateway at the median raw "
                    f"{median_raw:.1f} us/read: {median_raw / median_ratio:.1f} us/read"
                )
            if args.json:
                print(json.dumps(results))
            if args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                loop.run_until_complete(read_loops[args.profile](args.reads))
                profiler.disable()
                stats = pstats.Stats(profiler)
                calls = sum(entry[1] for entry in stats.stats.values())  # type: ignore[attr-defined]
                print(f"\n{args.profile}: {calls / args.reads:.0f} Python calls per read")
                stats.sort_stats("tottime").print_stats(30)
                stats.sort_stats("cumulative").print_stats(40)
        finally:
            loop.run_until_complete(served.__aexit__(None, None, None))
            loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
