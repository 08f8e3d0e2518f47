"""The gateway against raw FastAPI over HTTP, on SQLite and PostgreSQL (a benchmark, not a test).

    make bench            # or: .venv/bin/python -m tests.bench.bench_http [--seconds 8] [--runs 2]

Starts the gateway (one uvicorn worker, as `retail-gateway serve` runs it) and the raw FastAPI
app of the same shape (tests/bench/raw_app.py: same paths and pydantic models, no auth, no
storage), drives both with wrk on loopback, each run bounded by --seconds, and prints requests/s
at 32 connections, p50 and p99 at 8 connections, errors, and the ratio gateway / raw for:

1. read:   an authenticated partner read of availability for one SKU (JWT verify + throttle + read)
2. intake: partner order intake with distinct keys (JWT + throttle + idempotency + validation +
           reservation + durable write + outbox)
3. replay: an idempotent replay of an existing key

For intake, a third app runs too: raw FastAPI that also writes each order durably in one
transaction (the floor under any intake that keeps what it answers). Raw and gateway runs
alternate, so both see the same machine; every figure is the best of --runs
runs (all runs go to --out as JSON). PostgreSQL runs when BENCH_DATABASE_URL or TEST_DATABASE_URL
is set (a schema of its own, dropped afterwards). Then the growth figures (tests/bench/growth.py)
and, with --profile, a py-spy profile of the gateway during intake.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import PARTNER_SCOPES
from gateway_infra.clock import SystemClock
from process_api.channels.demo import DEMO_CHANNEL_PROFILES
from tests.bench import growth as growth_bench
from tests.bench.growth import database
from tests.bench.raw_app import FLOOR_DATABASE_URL
from tests.conftest import TEST_ENVIRONMENT, free_port, make_settings, migrate, start_gateway
from tests.factories import product, seed_products

SKU = "MUG-RED-350"
ON_HAND = 100_000_000
TIERS = {
    "standard": {"burst": 10_000_000, "sustained": 100_000_000},
    "premium": {"burst": 10_000_000, "sustained": 100_000_000},
}
THROUGHPUT_CONNECTIONS = 32
LATENCY_CONNECTIONS = 8
TARGETS = {"read": 0.50, "intake": 0.25, "replay": 0.25}
P99_TARGET_MS = 25.0
WRK_MISSING = (
    "wrk is not installed: it drives the benchmark. On Debian or Ubuntu: "
    "sudo apt-get install wrk (package `wrk`); elsewhere see https://github.com/wg/wrk"
)

ORDER_BODY = (
    '{"channel_order_id":"%s","currency":"EUR","lines":[{"line_id":"1","sku":"'
    + SKU
    + '","quantity":1,"unit_price":{"amount_minor":1290,"currency":"EUR"}}]}'
)

DONE_LUA = """
function done(summary, latency, requests)
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def lua_read(token: str | None) -> str:
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
    return f'wrk.method = "GET"\n{auth}{DONE_LUA}'


def lua_intake(token: str | None, run: str) -> str:
    auth = f'["Authorization"] = "Bearer {token}",' if token else ""
    body = ORDER_BODY.replace('"', '\\"')
    return f"""
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local n = 0
function request()
  n = n + 1
  local id = "{run}-" .. tid .. "-" .. n
  local headers = {{{auth} ["Content-Type"] = "application/json",
                   ["Idempotency-Key"] = '"' .. id .. '"'}}
  return wrk.format("POST", nil, headers, string.format("{body}", id))
end
{DONE_LUA}"""


def lua_replay(token: str | None, key: str) -> str:
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
    body = (ORDER_BODY % key).replace('"', '\\"')
    return f"""wrk.method = "POST"
{auth}wrk.headers["Content-Type"] = "application/json"
wrk.headers["Idempotency-Key"] = '"{key}"'
wrk.body = "{body}"
{DONE_LUA}"""


@dataclass
class Run:
    target: str  # gateway / raw / floor (raw + one durable write, intake only)
    database: str
    scenario: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    lag: dict[str, Any] | None = None

    def line(self) -> str:
        lag = f" loop lag p99 {self.lag.get('p99_ms')} ms" if self.lag else ""
        return (
            f"  {self.database:<8} {self.scenario:<7} c={self.connections:<3} {self.target:<8}"
            f"{self.rps:>8.0f}/s p50 {self.p50_ms:6.2f} ms p99 {self.p99_ms:7.2f} ms "
            f"errors {self.errors}{lag}"
        )


def wrk(url: str, script: str, connections: int, seconds: int, workdir: Path) -> dict[str, Any]:
    path = workdir / f"{uuid.uuid4().hex}.lua"
    path.write_text(script)
    threads = min(2, connections)
    result = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(path),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("WRK_RESULT "))
    parsed: dict[str, Any] = json.loads(line.removeprefix("WRK_RESULT "))
    return parsed


# ---------------------------------------------------------------- servers


class Server:
    """One uvicorn worker serving `target` on a loopback port, as a process of its own."""

    def __init__(self, target: str, log: Path, env: dict[str, str], factory: bool) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        code = (
            "import uvicorn; uvicorn.run("
            f"{target!r}, factory={factory}, host='127.0.0.1', port={self.port}, log_config=None)"
        )
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", code], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{target} exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{self.url}/healthz", timeout=1)
                return
            time.sleep(0.1)
        raise RuntimeError(f"{target} did not answer within 60 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def prepare(url: str) -> tuple[str, str]:
    """A migrated store with the SKU in stock, the demo channels and a partner client."""
    migrate(url)
    setup = start_gateway(make_settings(url, throttle_tiers=TIERS), SystemClock())
    try:
        seed_products(setup, product(SKU), on_hand=ON_HAND)
        setup.channels.seed_sync(DEMO_CHANNEL_PROFILES, actor="bench")
        record, secret = setup.clients.add(
            name="bench", kind=ClientKind.PARTNER, scopes=PARTNER_SCOPES, channel="webshop"
        )
    finally:
        setup.database.dispose()
    return record.client_id, secret


def gateway_env(url: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
        **TEST_ENVIRONMENT,
        "DATABASE_URL": url,
        "GATEWAY_THROTTLE_TIERS": json.dumps(TIERS),
        "GATEWAY_LOG_LEVEL": "WARNING",
    }


# ---------------------------------------------------------------- the HTTP runs


def bench_database(
    kind: str, raw: Server, args: argparse.Namespace, workdir: Path, runs: list[Run]
) -> None:
    with database(kind, workdir) as url:
        client_id, secret = prepare(url)
        log = workdir / f"gateway-{kind}.log"
        served = Server("tests.bench.lag_probe:create_app", log, gateway_env(url), True)
        floor: Server | None = None
        try:
            floor = Server(
                "tests.bench.raw_app:durable_app",
                workdir / f"floor-{kind}.log",
                {**os.environ, FLOOR_DATABASE_URL: url},
                True,
            )
            token = httpx.post(
                f"{served.url}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(client_id, secret),
            ).json()["access_token"]
            replay_key = f"replay-{uuid.uuid4().hex}"
            first = httpx.post(
                f"{served.url}/partner/v2/orders",
                content=ORDER_BODY % replay_key,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": f'"{replay_key}"',
                },
            )
            assert first.status_code in (201, 202), first.text
            for repeat in range(args.runs):
                for scenario in ("read", "intake", "replay"):
                    for connections in (THROUGHPUT_CONNECTIONS, LATENCY_CONNECTIONS):
                        targets = [("raw", raw, None), ("gateway", served, token)]
                        if scenario == "intake":
                            targets.insert(1, ("floor", floor, None))
                        for target, server, auth in targets:
                            run = one_run(
                                Case(kind, scenario, connections, repeat, target),
                                server,
                                auth,
                                replay_key,
                                args,
                                workdir,
                            )
                            runs.append(run)
                            print(run.line(), flush=True)
        finally:
            served.stop()
            if floor is not None:
                floor.stop()


@dataclass(frozen=True)
class Case:
    database: str
    scenario: str
    connections: int
    repeat: int
    target: str


def one_run(
    case: Case,
    server: Server,
    token: str | None,
    replay_key: str,
    args: argparse.Namespace,
    workdir: Path,
) -> Run:
    if case.scenario == "read":
        script, path = lua_read(token), f"/partner/v2/inventory?sku={SKU}"
    elif case.scenario == "intake":
        tag = f"{case.database}-{case.connections}-{case.repeat}-{case.target}"
        script, path = lua_intake(token, f"{tag}-{uuid.uuid4().hex[:6]}"), "/partner/v2/orders"
    else:
        script, path = lua_replay(token, replay_key), "/partner/v2/orders"
    gateway = case.target == "gateway"
    if gateway:
        httpx.get(f"{server.url}/__bench/lag")  # starts a fresh lag window
    if (
        gateway
        and case.scenario in args.profile.split(",")
        and case.database == "sqlite"
        and case.connections == THROUGHPUT_CONNECTIONS
        and case.repeat == 0
    ):
        result = profiled(server, case.scenario, path, script, case.connections, args, workdir)
    else:
        result = wrk(server.url + path, script, case.connections, args.seconds, workdir)
    lag = httpx.get(f"{server.url}/__bench/lag").json() if gateway else None
    return Run(
        target=case.target,
        database=case.database,
        scenario=case.scenario,
        connections=case.connections,
        rps=result["requests"] / (result["duration_us"] / 1e6),
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        errors=sum(result[k] for k in ("connect", "read", "write", "status", "timeout")),
        requests=result["requests"],
        lag=lag,
    )


def profiled(
    server: Server,
    scenario: str,
    path: str,
    script: str,
    connections: int,
    args: argparse.Namespace,
    workdir: Path,
) -> dict[str, Any]:
    """wrk with py-spy sampling the gateway process meanwhile; prints the top frames."""
    raw_profile = workdir / f"{scenario}.pyspy.txt"
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(server.process.pid),
            "--duration",
            str(args.seconds),
            "--rate",
            "200",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(raw_profile),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    result = wrk(server.url + path, script, connections, args.seconds, workdir)
    spy.wait(timeout=60)
    if raw_profile.exists():
        report = top_frames(raw_profile.read_text(), scenario)
        print(report)
        Path(args.out).with_suffix(f".{scenario}.profile.txt").write_text(report)
        shutil.copy(raw_profile, Path(args.out).with_suffix(f".{scenario}.pyspy.txt"))
    else:
        print("  (py-spy left no profile: it needs ptrace rights on the gateway process)")
    return result


def top_frames(collapsed: str, scenario: str, count: int = 20) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        n = int(samples)
        total += n
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0] + ")"
            for f in stack.split(";")
        ]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"py-spy profile of the gateway during {scenario} ({total} samples)", "", "self:"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in own.most_common(count)]
    lines += ["", "inclusive time:"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in inclusive.most_common(count)]
    return "\n".join(lines)


# ---------------------------------------------------------------- the table


def best(runs: list[Run], **match: Any) -> Run | None:
    chosen = [r for r in runs if all(getattr(r, k) == v for k, v in match.items())]
    return max(chosen, key=lambda r: r.rps) if chosen else None


def table(runs: list[Run]) -> str:
    head = (
        f"{'database':<9}{'scenario':<8}{'gateway req/s':>14}{'raw req/s':>11}{'ratio':>7}"
        f"{'target':>8}{'p50 ms':>8}{'p99 ms':>8}{'p99<25':>8}{'errors':>8}{'lag p99':>9}"
        f"{'floor req/s':>13}{'floor/raw':>11}"
    )
    lines = [head, "-" * len(head)]
    for kind in dict.fromkeys(r.database for r in runs):
        for scenario in ("read", "intake", "replay"):
            raw_scenario = "read" if scenario == "read" else "intake"  # raw has no replay
            gw = best(runs, target="gateway", database=kind, scenario=scenario, connections=32)
            raw = best(runs, target="raw", database=kind, scenario=raw_scenario, connections=32)
            lat = best(runs, target="gateway", database=kind, scenario=scenario, connections=8)
            if gw is None or raw is None or lat is None:
                continue
            ratio = gw.rps / raw.rps
            errors = sum(r.errors for r in runs if (r.database, r.scenario) == (kind, scenario))
            lag = gw.lag.get("p99_ms") if gw.lag else None
            floor = best(runs, target="floor", database=kind, scenario=scenario, connections=32)
            floor_rps = f"{floor.rps:.0f}" if floor else "-"
            floor_ratio = f"{floor.rps / raw.rps:.0%}" if floor else "-"
            lines.append(
                f"{kind:<9}{scenario:<8}{gw.rps:>14.0f}{raw.rps:>11.0f}{ratio:>7.0%}"
                f"{'met' if ratio >= TARGETS[scenario] else 'missed':>8}{lat.p50_ms:>8.2f}"
                f"{lat.p99_ms:>8.2f}{'met' if lat.p99_ms < P99_TARGET_MS else 'missed':>8}"
                f"{errors:>8}{lag if lag is not None else '-':>9}{floor_rps:>13}{floor_ratio:>11}"
            )
    lines.append("")
    lines.append(
        "req/s at 32 connections, p50/p99 at 8 (best of the runs); ratio = gateway / raw "
        "(replay against raw's validated POST); targets: read >= 50%, intake >= 25% of raw, "
        "p99 < 25 ms; lag p99 = event-loop lag in the gateway during the 32-connection run; "
        "floor = raw FastAPI that also writes each order in one transaction before answering "
        "(tests/bench/raw_app.py durable_app)"
    )
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {platform.platform()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8, help="length of each wrk run")
    parser.add_argument("--runs", type=int, default=2, help="runs of each scenario")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument(
        "--profile", default="", help="py-spy the gateway during these scenarios (read,intake)"
    )
    parser.add_argument("--no-growth", action="store_true", help="skip the growth figures")
    parser.add_argument("--out", default="reports/bench.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print(WRK_MISSING, file=sys.stderr)
        return 2
    kinds = [k for k in args.databases.split(",") if k]
    if "postgres" in kinds and not (
        os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    ):
        print("PostgreSQL skipped: set BENCH_DATABASE_URL or TEST_DATABASE_URL", file=sys.stderr)
        kinds.remove("postgres")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    print(
        f"wrk {args.seconds} s per run, {args.runs} runs per scenario, raw and gateway alternating"
    )
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        workdir = Path(tmp)
        raw = Server("tests.bench.raw_app:app", workdir / "raw.log", dict(os.environ), False)
        try:
            for kind in kinds:
                bench_database(kind, raw, args, workdir, runs)
        finally:
            raw.stop()
    report = table(runs)
    print()
    print(report)
    growth: dict[str, Any] = {}
    if not args.no_growth:
        growth = growth_bench.run_all(kinds)
    Path(args.out).write_text(
        json.dumps(
            {"machine": machine(), "runs": [asdict(r) for r in runs], "growth": growth}, indent=2
        )
    )
    print(f"\nall runs: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
