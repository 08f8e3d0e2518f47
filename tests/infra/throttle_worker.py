"""Helper of test_throttle: one OS process checking one subject against a shared Redis.

Run as `python -m tests.infra.throttle_worker URL KEY_PREFIX --requests N ...`; waits until
`--parties` processes have arrived (a barrier in Redis), sends its checks with some concurrency
and prints {"allowed": n, "refused": m} as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import redis.asyncio as aredis

from gateway_infra.settings import ThrottleTier
from gateway_infra.throttle import Throttle


async def wait_for_parties(url: str, barrier_key: str, parties: int) -> None:
    """A barrier: the last process to arrive releases everyone (a list each one pops from)."""
    client = aredis.from_url(url)
    try:
        arrived = await client.incr(f"{barrier_key}:arrived")
        await client.expire(f"{barrier_key}:arrived", 120)
        if arrived == parties:
            await client.rpush(f"{barrier_key}:go", *range(parties))
            await client.expire(f"{barrier_key}:go", 120)
        if await client.blpop([f"{barrier_key}:go"], timeout=60) is None:
            raise SystemExit(f"only {arrived} of {parties} processes arrived")
    finally:
        await client.aclose()


async def run(args: argparse.Namespace) -> dict[str, int]:
    await wait_for_parties(args.url, f"{args.key_prefix}:barrier", args.parties)
    tier = ThrottleTier(
        burst=args.burst,
        burst_window_seconds=1,
        sustained=args.sustained,
        sustained_window_seconds=args.sustained_window,
    )
    throttle = Throttle(args.url, args.key_prefix)
    allowed = 0
    remaining = args.requests

    async def worker() -> None:
        nonlocal allowed, remaining
        while remaining > 0:
            remaining -= 1
            decision = await throttle.check("partner", args.subject, tier)
            allowed += decision.allowed

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(args.concurrency):
                group.create_task(worker())
    finally:
        await throttle.aclose()
    return {"allowed": allowed, "refused": args.requests - allowed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("key_prefix")
    parser.add_argument("--subject", default="client-1")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--parties", type=int, default=2)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--sustained", type=int, default=50)
    parser.add_argument("--sustained-window", type=int, default=3600)
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
