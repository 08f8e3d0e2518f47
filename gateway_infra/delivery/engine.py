"""Webhook delivery as one part of the gateway: subscriptions, relay, sender and operations."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import httpx

from gateway_infra.auth.secret_box import SecretBox
from gateway_infra.delivery.admin import DeliveryAdmin
from gateway_infra.delivery.policy import DeliveryPolicy
from gateway_infra.delivery.relay import Relay
from gateway_infra.delivery.safety import outbound_client
from gateway_infra.delivery.sender import EndpointDisabledHandler, Sender
from gateway_infra.delivery.subscriptions import Subscriptions
from gateway_infra.unit_of_work import Store


class WebhookDelivery:
    """Everything webhook delivery needs, wired from one policy.

    `allowed_types` are the event types partners may receive at all (the partner layer's
    list); a subscription names some of them."""

    def __init__(
        self,
        store: Store,
        box: SecretBox,
        policy: DeliveryPolicy,
        *,
        allowed_types: Sequence[str],
        on_endpoint_disabled: EndpointDisabledHandler | None = None,
        http: httpx.AsyncClient | None = None,
        owner: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.allowed_types = tuple(allowed_types)
        self.http = http or outbound_client(
            policy.addresses, timeout_seconds=policy.timeout_seconds
        )
        self.subscriptions = Subscriptions(store, box, policy, allowed_types=self.allowed_types)
        self.relay = Relay(store, allowed_types=self.allowed_types)
        self.sender = Sender(
            store,
            box,
            self.http,
            policy,
            owner=owner,
            rng=rng,
            on_endpoint_disabled=on_endpoint_disabled,
        )
        self.admin = DeliveryAdmin(store, allowed_types=self.allowed_types)

    async def run_once(self) -> int:
        """Relay what is sequenced, then send until nothing is due now; attempts made."""
        await self.relay.run_once()
        return await self.sender.run_until_idle()

    async def run_forever(self, poll_seconds: float) -> None:
        """The relay and the sender as background loops of a gateway process."""
        await asyncio.gather(
            self.relay.run_forever(poll_seconds, on_created=self.sender.nudge),
            self.sender.run_forever(poll_seconds),
        )

    async def aclose(self) -> None:
        await self.http.aclose()
