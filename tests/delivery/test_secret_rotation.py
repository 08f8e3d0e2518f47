"""Secret rotation with an overlap: both secrets sign while it lasts, only the new one after."""

from __future__ import annotations

from datetime import timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from gateway import Gateway
from gateway_infra.clock import ManualClock
from gateway_infra.delivery import InvalidSubscription
from tests.delivery.conftest import Call, Receiver, emit, pump, subscribe


def verifies(secret: str, call: Call) -> bool:
    try:
        Webhook(secret).verify(call.body, call.headers)
    except WebhookVerificationError:
        return False
    return True


async def test_old_and_new_secret_both_verify_during_the_overlap_and_only_the_new_after(
    gateway: Gateway, receiver: Receiver, clock: ManualClock
) -> None:
    made = await subscribe(gateway, receiver)
    old = made.secret
    rotated = await gateway.webhooks.subscriptions.rotate_secret(
        made.subscription.subscription_id, overlap=timedelta(seconds=60)
    )
    new = rotated.secret
    receiver.secrets.append(new)
    await emit(gateway, "order.accepted", "order/ord_1")
    await pump(gateway)
    clock.advance(timedelta(seconds=60))
    await emit(gateway, "order.accepted", "order/ord_2")
    await pump(gateway)

    during, after = receiver.calls
    assert new != old
    assert rotated.subscription.secret_version == 2
    assert rotated.subscription.previous_secret_expires_at is not None
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert (verifies(old, during), verifies(new, during)) == (True, True)
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert (verifies(old, after), verifies(new, after)) == (False, True)


async def test_a_rotation_without_overlap_ends_the_old_secret_at_once(
    gateway: Gateway, receiver: Receiver
) -> None:
    made = await subscribe(gateway, receiver)
    rotated = await gateway.webhooks.subscriptions.rotate_secret(
        made.subscription.subscription_id, overlap=timedelta(0)
    )
    receiver.secrets.append(rotated.secret)
    await emit(gateway, "order.accepted", "order/ord_1")
    await pump(gateway)

    [call] = receiver.calls
    assert (verifies(made.secret, call), verifies(rotated.secret, call)) == (False, True)
    assert rotated.subscription.previous_secret_expires_at is None


@pytest.mark.parametrize("seconds", [-1, 8 * 24 * 3600])
async def test_an_overlap_beyond_a_week_is_refused(
    gateway: Gateway, receiver: Receiver, seconds: int
) -> None:
    made = await subscribe(gateway, receiver)

    with pytest.raises(InvalidSubscription, match="overlap"):
        await gateway.webhooks.subscriptions.rotate_secret(
            made.subscription.subscription_id, overlap=timedelta(seconds=seconds)
        )
