"""`retail-gateway webhooks ...` and `retail-gateway deliveries ...`, as scripts use them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest

from gateway import Gateway
from gateway_infra.clock import ManualClock
from gateway_infra.delivery import DeliveryState
from tests.conftest import TEST_ENVIRONMENT
from tests.delivery.conftest import Receiver, all_deliveries, emit, pump, subscribe

# The command line is the same on every database; the engine's tests cover PostgreSQL.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **TEST_ENVIRONMENT,
        "DATABASE_URL": database_url,
        "GATEWAY_WEBHOOK_ALLOW_LOOPBACK": "true",
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli_json(database_url: str, *args: str) -> Any:
    result = cli(database_url, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_webhooks_are_added_listed_rotated_disabled_and_enabled(
    database_url: str, receiver: Receiver
) -> None:
    added = cli_json(
        database_url,
        "webhooks",
        "add",
        "--channel",
        "webshop",
        "--url",
        f"{receiver.url}/hook",
        "--types",
        "order.accepted,order.shipped",
    )
    webhook_id = added["subscription_id"]
    rotated = cli_json(
        database_url, "webhooks", "rotate-secret", webhook_id, "--overlap-seconds", "60"
    )
    disabled = cli_json(database_url, "webhooks", "disable", webhook_id)
    listed = cli_json(database_url, "webhooks", "list", "--channel", "webshop")
    enabled = cli_json(database_url, "webhooks", "enable", webhook_id)
    refused = cli(
        database_url, "webhooks", "add", "--channel", "webshop", "--url", "http://10.1.1.1/"
    )

    assert added["secret"].startswith("whsec_")
    assert added["event_types"] == ["order.accepted", "order.shipped"]
    assert rotated["secret"] not in (added["secret"], None)
    assert rotated["secret_version"] == 2
    assert disabled["state"] == "disabled"
    assert [(w["subscription_id"], w["state"]) for w in listed["webhooks"]] == [
        (webhook_id, "disabled")
    ]
    assert "secret" not in listed["webhooks"][0]
    assert enabled["state"] == "active"
    assert refused.returncode == 2
    assert "10.1.1.1 is a private address" in refused.stderr


async def test_dead_letters_are_listed_replayed_and_a_range_resent(
    database_url: str, gateway: Gateway, receiver: Receiver, clock: ManualClock
) -> None:
    await subscribe(gateway, receiver)
    receiver.failing = True
    start = clock.now()
    await emit(gateway, "order.accepted", "order/ord_1")
    await emit(gateway, "order.accepted", "order/ord_2")
    for _ in range(gateway.settings.webhook_max_attempts):
        await pump(gateway)
        clock.advance(timedelta(seconds=4))

    dead = cli_json(database_url, "deliveries", "dead-letters", "--channel", "webshop")
    first = dead["dead_letters"][0]["delivery_id"]
    one = cli_json(database_url, "deliveries", "replay", str(first))
    rest = cli_json(database_url, "deliveries", "replay", "--channel", "webshop")
    nothing = cli(database_url, "deliveries", "replay")
    receiver.failing = False
    await pump(gateway)
    resent = cli_json(
        database_url,
        "deliveries",
        "resend",
        "--channel",
        "webshop",
        "--from",
        start.isoformat(),
        "--to",
        (start + timedelta(minutes=1)).isoformat(),
    )

    assert len(dead["dead_letters"]) == 2
    assert (one["delivery_id"], one["state"]) == (first, "pending")
    assert rest == {"replayed": 1}
    assert nothing.returncode == 2
    assert len(receiver.accepted) == 2
    assert resent == {"scheduled": 2}
    assert {d.state for d in await all_deliveries(gateway)} == {DeliveryState.PENDING}
