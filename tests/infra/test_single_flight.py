"""Concurrent callers of one key share one call; the key is free again once it ends."""

from __future__ import annotations

import asyncio
import functools

import pytest

from gateway_infra.single_flight import SingleFlight


async def test_callers_of_one_key_share_one_call_and_other_keys_do_not() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    calls: list[str] = []

    async def call(key: str) -> int:
        calls.append(key)
        await asyncio.sleep(0.01)
        return len(calls)

    results = await asyncio.gather(
        *(flight.run(k, functools.partial(call, k)) for k in ("a", "a", "a", "b"))
    )

    assert sorted(calls) == ["a", "b"]
    assert results[0] == results[1] == results[2]


async def test_an_error_reaches_every_caller_and_the_next_call_runs_again() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    attempts = 0

    async def failing() -> int:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("backend down")

    outcomes = await asyncio.gather(
        flight.run("a", failing), flight.run("a", failing), return_exceptions=True
    )

    assert [type(o) for o in outcomes] == [RuntimeError, RuntimeError]
    with pytest.raises(RuntimeError):
        await flight.run("a", failing)
    assert attempts == 2
