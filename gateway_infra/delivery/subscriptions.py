"""Webhook subscriptions: a channel's endpoints, their event types and their signing secrets.

Secrets are stored encrypted (SecretBox, the key from the environment) because the sender needs
them to sign; they are shown once, when created or rotated. A rotation keeps the old secret
signing beside the new one for an overlap, so a receiver can switch without missing a call.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import JsonValue
from sqlalchemy import Connection, func, insert, select, update

from gateway_infra.auth.secret_box import SecretBox
from gateway_infra.database import for_update
from gateway_infra.delivery.models import DeliveryState, Subscription, SubscriptionState
from gateway_infra.delivery.policy import DeliveryPolicy
from gateway_infra.delivery.safety import DestinationRefused, validate_url
from gateway_infra.delivery.signing import new_secret
from gateway_infra.delivery.tables import deliveries, subscriptions
from gateway_infra.unit_of_work import Store, UnitOfWork

SOURCE = "gateway_infra.delivery"


class SubscriptionError(Exception):
    """A subscription change that cannot be made; the API answers it as a problem."""


class UnknownSubscription(SubscriptionError):
    """No such subscription (or it was deleted)."""


class InvalidSubscription(SubscriptionError):
    """The URL or the event types are not acceptable."""


class SubscriptionConflict(SubscriptionError):
    """The subscription's state or the channel's limit does not allow the change."""


@dataclass(frozen=True)
class SubscriptionWithSecret:
    """A subscription with its newest secret in clear: the answer of create and rotate only."""

    subscription: Subscription
    secret: str


def _purpose(subscription_id: str) -> str:
    return f"webhook-secret:{subscription_id}"


def signing_secrets(box: SecretBox, row: Any, now: datetime) -> list[str]:
    """The secrets that sign a call now: the current one, and the previous one in its overlap."""
    purpose = _purpose(row.subscription_id)
    found = [box.decrypt(row.secret, purpose=purpose).decode()]
    expires = row.previous_secret_expires_at
    if row.previous_secret is not None and expires is not None and now < expires:
        found.append(box.decrypt(row.previous_secret, purpose=purpose).decode())
    return found


class Subscriptions:
    """Create, read, rotate, disable, enable and delete webhook subscriptions."""

    def __init__(
        self,
        store: Store,
        box: SecretBox,
        policy: DeliveryPolicy,
        *,
        allowed_types: Sequence[str],
    ) -> None:
        self.store = store
        self.box = box
        self.policy = policy
        self.allowed_types = tuple(allowed_types)

    def _event_types(self, requested: Sequence[str]) -> list[str]:
        wanted = list(dict.fromkeys(requested))
        if not wanted:
            raise InvalidSubscription("name at least one event type")
        unknown = [t for t in wanted if t not in self.allowed_types]
        if unknown:
            known = ", ".join(self.allowed_types)
            raise InvalidSubscription(f"unknown event type(s) {', '.join(unknown)}; known: {known}")
        return wanted

    async def _checked_url(self, url: str) -> str:
        try:
            return await validate_url(url, self.policy.addresses)
        except DestinationRefused as exc:
            raise InvalidSubscription(f"the webhook URL is refused: {exc}") from exc

    async def create(
        self,
        *,
        channel: str,
        url: str,
        event_types: Sequence[str],
        client_id: str | None = None,
        description: str | None = None,
    ) -> SubscriptionWithSecret:
        """A new active subscription; events occurring from now on are delivered to it."""
        types = self._event_types(event_types)
        checked = await self._checked_url(url)
        subscription_id = "whk_" + secrets.token_hex(10)
        secret = new_secret()
        sealed = self.box.encrypt(secret.encode(), purpose=_purpose(subscription_id))

        def create(uow: UnitOfWork) -> Subscription:
            count = uow.conn.execute(
                select(func.count())
                .select_from(subscriptions)
                .where(
                    subscriptions.c.channel == channel,
                    subscriptions.c.state != SubscriptionState.DELETED.value,
                )
            ).scalar_one()
            if count >= self.policy.max_subscriptions_per_channel:
                raise SubscriptionConflict(
                    f"channel {channel!r} has {count} webhooks, the most it may have; "
                    "delete one first"
                )
            uow.conn.execute(
                insert(subscriptions).values(
                    subscription_id=subscription_id,
                    channel=channel,
                    client_id=client_id,
                    url=checked,
                    event_types=types,
                    description=description,
                    state=SubscriptionState.ACTIVE.value,
                    disabled_reason=None,
                    failing_since=None,
                    secret=sealed,
                    secret_version=1,
                    previous_secret=None,
                    previous_secret_expires_at=None,
                    created_at=uow.now,
                    updated_at=uow.now,
                )
            )
            uow.emit(
                "webhook.created",
                source=SOURCE,
                subject=f"webhook/{subscription_id}",
                channel=channel,
                data={
                    "subscription_id": subscription_id,
                    "url": checked,
                    "event_types": list[JsonValue](types),
                },
            )
            return _load(uow.conn, subscription_id)

        return SubscriptionWithSecret(await self.store.write(create), secret)

    async def get(self, subscription_id: str) -> Subscription | None:
        """The subscription, also when deleted (its state says so); None when unknown."""
        return await self.store.read(lambda conn: _find(conn, subscription_id))

    async def list(
        self, *, channel: str | None = None, include_deleted: bool = False
    ) -> list[Subscription]:
        def query(conn: Connection) -> list[Subscription]:
            q = select(subscriptions).order_by(subscriptions.c.created_at, subscriptions.c.url)
            if channel is not None:
                q = q.where(subscriptions.c.channel == channel)
            if not include_deleted:
                q = q.where(subscriptions.c.state != SubscriptionState.DELETED.value)
            return [Subscription.from_row(row) for row in conn.execute(q)]

        return await self.store.read(query)

    async def rotate_secret(
        self, subscription_id: str, *, overlap: timedelta | None = None
    ) -> SubscriptionWithSecret:
        """A new secret; the replaced one keeps signing beside it until the overlap ends."""
        keep = self.policy.secret_overlap if overlap is None else overlap
        if keep < timedelta(0) or keep > self.policy.max_secret_overlap:
            raise InvalidSubscription(
                "the overlap is between 0 and "
                f"{int(self.policy.max_secret_overlap.total_seconds())} seconds"
            )
        secret = new_secret()
        sealed = self.box.encrypt(secret.encode(), purpose=_purpose(subscription_id))

        def rotate(uow: UnitOfWork) -> Subscription:
            row = _live_row(uow.conn, subscription_id)
            uow.conn.execute(
                update(subscriptions)
                .where(subscriptions.c.subscription_id == subscription_id)
                .values(
                    secret=sealed,
                    secret_version=row.secret_version + 1,
                    previous_secret=row.secret if keep > timedelta(0) else None,
                    previous_secret_expires_at=uow.now + keep if keep > timedelta(0) else None,
                    updated_at=uow.now,
                )
            )
            uow.emit(
                "webhook.secret_rotated",
                source=SOURCE,
                subject=f"webhook/{subscription_id}",
                channel=row.channel,
                data={
                    "subscription_id": subscription_id,
                    "secret_version": row.secret_version + 1,
                    "overlap_seconds": int(keep.total_seconds()),
                },
            )
            return _load(uow.conn, subscription_id)

        return SubscriptionWithSecret(await self.store.write(rotate), secret)

    async def current_secret(self, subscription_id: str, *, version: int) -> str | None:
        """The secret in clear while it is still the current one of that version (else None).

        Lets an idempotent retry of create or rotate answer the secret again without the
        answer, secret included, being kept in clear anywhere."""
        row = await self.store.read(
            lambda conn: conn.execute(
                select(subscriptions).where(subscriptions.c.subscription_id == subscription_id)
            ).one_or_none()
        )
        if row is None or row.state == SubscriptionState.DELETED.value:
            return None
        if row.secret_version != version:
            return None
        return self.box.decrypt(row.secret, purpose=_purpose(subscription_id)).decode()

    async def delete(self, subscription_id: str) -> Subscription:
        """Stop delivering to it; its pending deliveries are cancelled, its history is kept."""

        def remove(uow: UnitOfWork) -> Subscription:
            row = _live_row(uow.conn, subscription_id)
            uow.conn.execute(
                update(subscriptions)
                .where(subscriptions.c.subscription_id == subscription_id)
                .values(state=SubscriptionState.DELETED.value, updated_at=uow.now)
            )
            uow.conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.subscription_id == subscription_id,
                    deliveries.c.state == DeliveryState.PENDING.value,
                )
                .values(
                    state=DeliveryState.CANCELLED.value,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=uow.now,
                )
            )
            uow.emit(
                "webhook.deleted",
                source=SOURCE,
                subject=f"webhook/{subscription_id}",
                channel=row.channel,
                data={"subscription_id": subscription_id},
            )
            return _load(uow.conn, subscription_id)

        return await self.store.write(remove)

    async def disable(self, subscription_id: str, *, reason: str) -> Subscription:
        """Stop sending to it for now; its deliveries wait (and age) until it is enabled."""

        def disable(uow: UnitOfWork) -> Subscription:
            row = _live_row(uow.conn, subscription_id)
            uow.conn.execute(
                update(subscriptions)
                .where(subscriptions.c.subscription_id == subscription_id)
                .values(
                    state=SubscriptionState.DISABLED.value,
                    disabled_reason=reason,
                    updated_at=uow.now,
                )
            )
            if row.state == SubscriptionState.ACTIVE.value:
                uow.emit(
                    "webhook.disabled",
                    source=SOURCE,
                    subject=f"webhook/{subscription_id}",
                    channel=row.channel,
                    data={"subscription_id": subscription_id, "reason": reason},
                )
            return _load(uow.conn, subscription_id)

        return await self.store.write(disable)

    async def enable(self, subscription_id: str) -> Subscription:
        """Send to it again: the deliveries that waited go out, in order, from now on."""

        def enable(uow: UnitOfWork) -> Subscription:
            row = _live_row(uow.conn, subscription_id)
            uow.conn.execute(
                update(subscriptions)
                .where(subscriptions.c.subscription_id == subscription_id)
                .values(
                    state=SubscriptionState.ACTIVE.value,
                    disabled_reason=None,
                    failing_since=None,
                    updated_at=uow.now,
                )
            )
            if row.state != SubscriptionState.ACTIVE.value:
                uow.emit(
                    "webhook.enabled",
                    source=SOURCE,
                    subject=f"webhook/{subscription_id}",
                    channel=row.channel,
                    data={"subscription_id": subscription_id},
                )
            return _load(uow.conn, subscription_id)

        return await self.store.write(enable)


def _find(conn: Connection, subscription_id: str) -> Subscription | None:
    row = conn.execute(
        select(subscriptions).where(subscriptions.c.subscription_id == subscription_id)
    ).one_or_none()
    return None if row is None else Subscription.from_row(row)


def _load(conn: Connection, subscription_id: str) -> Subscription:
    found = _find(conn, subscription_id)
    assert found is not None
    return found


def _live_row(conn: Connection, subscription_id: str) -> Any:
    """The subscription's row, locked for the change; UnknownSubscription when gone."""
    query = select(subscriptions).where(subscriptions.c.subscription_id == subscription_id)
    query = for_update(conn, query)
    row = conn.execute(query).one_or_none()
    if row is None or row.state == SubscriptionState.DELETED.value:
        raise UnknownSubscription(f"no webhook {subscription_id!r}")
    return row
