"""Outbound safety: webhook URLs may only reach public addresses (loopback when allowed), the
connection goes to the address that was checked, redirects are not followed, answers are cut."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from gateway import Gateway
from gateway_infra.delivery import (
    AddressPolicy,
    AttemptOutcome,
    DeliveryPolicy,
    DeliveryState,
    DestinationRefused,
    InvalidSubscription,
    WebhookDelivery,
    validate_url,
)
from gateway_infra.settings import Settings
from partner_api.events import PARTNER_EVENT_TYPES
from tests.delivery.conftest import (
    Receiver,
    all_deliveries,
    attempts_of,
    delivery_settings,
    emit,
    pump,
    subscribe,
)

CUT_AT = 1024


@pytest.fixture
def settings(database_url: str) -> Settings:
    return delivery_settings(database_url, webhook_max_response_bytes=CUT_AT)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.10", "a private address"),
        ("fc00::1", "a private address"),
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("224.0.0.251", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "the unspecified address"),  # noqa: S104 - the address under test
        ("240.0.0.1", "a reserved address"),
        ("100.64.0.1", "not a public address"),
        ("93.184.215.14", None),
        ("2606:4700::6810:85e5", None),
    ],
)
def test_only_public_addresses_are_allowed(address: str, reason: str | None) -> None:
    assert AddressPolicy().refusal(ipaddress.ip_address(address)) == reason


def test_loopback_is_allowed_only_by_the_setting() -> None:
    allowing = AddressPolicy(allow_loopback=True)

    assert allowing.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert allowing.refusal(ipaddress.ip_address("::1")) is None
    assert allowing.refusal(ipaddress.ip_address("10.0.0.1")) == "a private address"


def resolving(table: dict[str, list[str]]) -> Callable[[str, int], object]:
    async def resolve(host: str, _port: int) -> list[str]:
        return table[host]

    return resolve


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("http://10.0.0.5/hook", "10.0.0.5 is a private address"),
        ("https://127.0.0.1:8443/hook", "127.0.0.1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
        ("http://[::1]:8080/hook", "::1 is a loopback address"),
        ("https://internal.example/hook", "internal.example resolves to 10.9.8.7"),
        ("https://mixed.example/hook", "mixed.example resolves to 192.168.0.2"),
        ("http://hooks.example/hook", "must start with https://"),
        ("ftp://hooks.example/hook", "must start with https://"),
        ("https://user:secret@hooks.example/hook", "must not carry credentials"),
        ("https:///hook", "has no host"),
    ],
)
async def test_webhook_urls_to_non_public_destinations_are_refused(url: str, refusal: str) -> None:
    policy = AddressPolicy(
        resolver=resolving(  # type: ignore[arg-type]
            {
                "internal.example": ["10.9.8.7"],
                "mixed.example": ["93.184.215.14", "192.168.0.2"],
                "hooks.example": ["93.184.215.14"],
            }
        )
    )

    with pytest.raises(DestinationRefused, match=refusal):
        await validate_url(url, policy)


async def test_a_public_https_url_is_accepted() -> None:
    policy = AddressPolicy(
        resolver=resolving({"hooks.example": ["93.184.215.14"]})  # type: ignore[arg-type]
    )

    assert await validate_url("https://hooks.example/in", policy) == "https://hooks.example/in"


async def test_loopback_urls_are_refused_at_subscription_without_the_setting(
    gateway: Gateway, receiver: Receiver
) -> None:
    async with engine(gateway, AddressPolicy(allow_loopback=False)) as strict:
        with pytest.raises(InvalidSubscription, match="loopback"):
            await strict.subscriptions.create(
                channel="webshop", url=f"{receiver.url}/hook", event_types=["order.accepted"]
            )


@asynccontextmanager
async def engine(gateway: Gateway, addresses: AddressPolicy) -> AsyncIterator[WebhookDelivery]:
    """Delivery for the same gateway with another address policy (resolver, loopback)."""
    delivery = WebhookDelivery(
        gateway.store,
        gateway.keys.box,
        DeliveryPolicy(addresses=addresses),
        allowed_types=PARTNER_EVENT_TYPES,
    )
    try:
        yield delivery
    finally:
        await delivery.aclose()


async def test_the_connection_goes_to_the_checked_address_under_the_urls_host_name(
    gateway: Gateway, receiver: Receiver
) -> None:
    port = receiver.url.rsplit(":", 1)[1]
    names = {"partner.example": ["127.0.0.1"]}
    policy = AddressPolicy(allow_loopback=True, resolver=resolving(names))  # type: ignore[arg-type]
    async with engine(gateway, policy) as delivery:
        made = await delivery.subscriptions.create(
            channel="webshop",
            url=f"http://partner.example:{port}/hook",
            event_types=["order.accepted"],
        )
        receiver.secrets.append(made.secret)
        await emit(gateway, "order.accepted", "order/ord_1")
        await gateway.sequencer.run_once()
        await delivery.run_once()

    # The name now points elsewhere: a new connection checks again and is refused (an open one
    # stays with the address it was checked for).
    names["partner.example"] = ["10.20.30.40"]
    async with engine(gateway, policy) as delivery:
        await emit(gateway, "order.accepted", "order/ord_2")
        await gateway.sequencer.run_once()
        await delivery.run_once()

    [call] = receiver.calls
    assert call.verified
    assert call.headers["host"] == f"partner.example:{port}"
    first, second = await all_deliveries(gateway)
    assert first.state is DeliveryState.DELIVERED
    [refused] = await attempts_of(gateway, second.delivery_id)
    assert refused.outcome is AttemptOutcome.REFUSED
    assert refused.error == (
        "destination refused: partner.example resolves to 10.20.30.40, a private address"
    )


async def test_a_loopback_destination_is_refused_at_send_time_without_the_setting(
    gateway: Gateway, receiver: Receiver
) -> None:
    await subscribe(gateway, receiver)
    await emit(gateway, "order.accepted", "order/ord_1")
    await gateway.sequencer.run_once()

    async with engine(gateway, AddressPolicy(allow_loopback=False)) as strict:
        await strict.run_once()

    assert receiver.calls == []
    [delivery] = await all_deliveries(gateway)
    [attempt] = await attempts_of(gateway, delivery.delivery_id)
    assert attempt.outcome is AttemptOutcome.REFUSED
    assert attempt.error is not None and "127.0.0.1 is a loopback address" in attempt.error


async def test_a_redirect_is_not_followed(gateway: Gateway, receiver: Receiver) -> None:
    await subscribe(gateway, receiver, path="/redirect")
    await emit(gateway, "order.accepted", "order/ord_1")

    await pump(gateway)

    assert receiver.calls_to("/hook") == []
    assert len(receiver.calls_to("/redirect")) == 1
    [delivery] = await all_deliveries(gateway)
    [attempt] = await attempts_of(gateway, delivery.delivery_id)
    assert delivery.state is DeliveryState.PENDING
    assert (attempt.outcome, attempt.status_code, attempt.error) == (
        AttemptOutcome.FAILED,
        307,
        "redirect not followed (HTTP 307)",
    )


async def test_an_oversized_answer_is_cut_at_the_cap(gateway: Gateway, receiver: Receiver) -> None:
    await subscribe(gateway, receiver, path="/big")
    await emit(gateway, "order.accepted", "order/ord_1")

    await pump(gateway)

    [delivery] = await all_deliveries(gateway)
    [attempt] = await attempts_of(gateway, delivery.delivery_id)
    assert delivery.state is DeliveryState.DELIVERED
    assert attempt.outcome is AttemptOutcome.SUCCEEDED
    assert attempt.response_bytes == CUT_AT
    assert attempt.error == f"response cut after {CUT_AT} bytes"
