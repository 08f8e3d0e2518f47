"""Operating delivery: dead letters, replaying them, re-sending a time range, attempts.

A replayed or re-sent delivery starts a new series of attempts (full retry budget and maximum
age from now); it keeps its event id, so the receiver sees the same `webhook-id` with a fresh
signature. Each operation is recorded as an event naming who asked for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, select, tuple_, update

from gateway_infra.database import for_update
from gateway_infra.delivery.models import (
    Attempt,
    Delivery,
    DeliveryState,
    SubscriptionState,
)
from gateway_infra.delivery.subscriptions import SOURCE
from gateway_infra.delivery.tables import attempts, deliveries, subscriptions
from gateway_infra.tables import outbox
from gateway_infra.unit_of_work import Store, UnitOfWork

MAX_RESEND_EVENTS = 10_000
MAX_REPLAY = 10_000


Replayed = Callable[[UnitOfWork, Delivery], None]
"""Extra writes (an audit entry, say) made in the transaction that replays a dead letter, given
the delivery as it is then: they commit, or not, with the replay."""


class DeliveryAdminError(Exception):
    """An operation on deliveries that cannot be done as asked."""


class UnknownDelivery(DeliveryAdminError):
    """No such delivery."""


class NotReplayable(DeliveryAdminError):
    """Only a dead letter can be replayed."""


class TooManyToResend(DeliveryAdminError):
    """The time range holds more events than one re-send may schedule."""


@dataclass(frozen=True)
class DeadLetterQuery:
    """Which dead letters: all filters optional, combined with AND."""

    channel: str | None = None
    subscription_id: str | None = None
    event_type: str | None = None
    dead_since: datetime | None = None
    dead_until: datetime | None = None

    def conditions(self) -> list[Any]:
        d = deliveries
        found: list[Any] = [d.c.state == DeliveryState.DEAD.value]
        if self.channel is not None:
            found.append(d.c.channel == self.channel)
        if self.subscription_id is not None:
            found.append(d.c.subscription_id == self.subscription_id)
        if self.event_type is not None:
            found.append(d.c.event_type == self.event_type)
        if self.dead_since is not None:
            found.append(d.c.dead_at >= self.dead_since)
        if self.dead_until is not None:
            found.append(d.c.dead_at < self.dead_until)
        return found


def _new_series(now: datetime) -> dict[str, Any]:
    return {
        "state": DeliveryState.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "series_started_at": now,
        "lease_owner": None,
        "lease_until": None,
        "delivered_at": None,
        "dead_at": None,
        "updated_at": now,
    }


class DeliveryAdmin:
    """What operators do with deliveries (process API and command line)."""

    def __init__(self, store: Store, *, allowed_types: Sequence[str]) -> None:
        self.store = store
        self.allowed_types = tuple(allowed_types)

    async def get(self, delivery_id: int) -> Delivery | None:
        return await self.store.read(lambda conn: _find(conn, delivery_id))

    async def attempts(self, delivery_id: int) -> list[Attempt] | None:
        """Every attempt of the delivery, oldest first; None when there is no such delivery."""

        def query(conn: Connection) -> list[Attempt] | None:
            if _find(conn, delivery_id) is None:
                return None
            rows = conn.execute(
                select(attempts)
                .where(attempts.c.delivery_id == delivery_id)
                .order_by(attempts.c.attempt_id)
            )
            return [Attempt.from_row(row) for row in rows]

        return await self.store.read(query)

    async def dead_letters(
        self, query: DeadLetterQuery, *, after: int | None = None, limit: int = 100
    ) -> list[Delivery]:
        """Dead letters matching the query, by delivery id, after the given one."""

        def read(conn: Connection) -> list[Delivery]:
            q = select(deliveries).where(*query.conditions())
            if after is not None:
                q = q.where(deliveries.c.delivery_id > after)
            q = q.order_by(deliveries.c.delivery_id).limit(limit)
            return [Delivery.from_row(row) for row in conn.execute(q)]

        return await self.store.read(read)

    async def replay(
        self,
        delivery_id: int,
        *,
        actor: str,
        also: Replayed | None = None,
    ) -> Delivery:
        """Send a dead letter again, as a new series of attempts; `also` runs in the same
        transaction."""

        def replay(uow: UnitOfWork) -> Delivery:
            query = select(deliveries).where(deliveries.c.delivery_id == delivery_id)
            query = for_update(uow.conn, query)
            row = uow.conn.execute(query).one_or_none()
            if row is None:
                raise UnknownDelivery(f"no delivery {delivery_id}")
            if row.state != DeliveryState.DEAD.value:
                raise NotReplayable(
                    f"delivery {delivery_id} is {row.state}; only dead letters are replayed"
                )
            uow.conn.execute(
                update(deliveries)
                .where(deliveries.c.delivery_id == delivery_id)
                .values(**_new_series(uow.now))
            )
            _audit(uow, "webhook.deliveries_replayed", row.channel, actor, [delivery_id])
            found = _find(uow.conn, delivery_id)
            assert found is not None
            if also is not None:
                also(uow, found)
            return found

        return await self.store.write(replay)

    async def replay_dead(self, query: DeadLetterQuery, *, actor: str) -> int:
        """Replay every dead letter matching the query (up to MAX_REPLAY); how many."""

        def replay(uow: UnitOfWork) -> int:
            ids = list(
                uow.conn.execute(
                    select(deliveries.c.delivery_id)
                    .where(*query.conditions())
                    .order_by(deliveries.c.delivery_id)
                    .limit(MAX_REPLAY)
                ).scalars()
            )
            if not ids:
                return 0
            uow.conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.delivery_id.in_(ids),
                    deliveries.c.state == DeliveryState.DEAD.value,
                )
                .values(**_new_series(uow.now))
            )
            _audit(uow, "webhook.deliveries_replayed", query.channel, actor, ids)
            return len(ids)

        return await self.store.write(replay)

    async def resend(
        self,
        *,
        channel: str,
        start: datetime,
        end: datetime,
        actor: str,
        subscription_id: str | None = None,
        event_types: Sequence[str] | None = None,
    ) -> int:
        """Send the channel's events that occurred in [start, end) again to its active
        subscriptions (or one of them), delivered before or not; how many deliveries."""
        types = [t for t in self.allowed_types if event_types is None or t in event_types]

        def resend(uow: UnitOfWork) -> int:
            conn, now = uow.conn, uow.now
            sub_query = select(subscriptions.c.subscription_id, subscriptions.c.event_types).where(
                subscriptions.c.channel == channel,
                subscriptions.c.state == SubscriptionState.ACTIVE.value,
            )
            if subscription_id is not None:
                sub_query = sub_query.where(subscriptions.c.subscription_id == subscription_id)
            subs = conn.execute(sub_query).all()
            if not subs or not types:
                return 0
            chosen = (
                select(
                    outbox.c.event_id,
                    outbox.c.type,
                    outbox.c.subject,
                    outbox.c.position,
                    outbox.c.occurred_at,
                )
                .where(
                    outbox.c.channel == channel,
                    outbox.c.position.is_not(None),
                    outbox.c.occurred_at >= start,
                    outbox.c.occurred_at < end,
                    outbox.c.type.in_(types),
                )
                .order_by(outbox.c.position)
                .limit(MAX_RESEND_EVENTS + 1)
            )
            if conn.dialect.name == "postgresql":
                # Share-locked until the pending deliveries commit: the event purge skips them
                # (gateway_infra.event_retention) instead of deleting what is about to be sent.
                chosen = chosen.with_for_update(read=True)
            events = conn.execute(chosen).all()
            if len(events) > MAX_RESEND_EVENTS:
                raise TooManyToResend(
                    f"more than {MAX_RESEND_EVENTS} events in that range; ask for a shorter one"
                )
            wanted = [
                (sub.subscription_id, event)
                for event in events
                for sub in subs
                if event.type in sub.event_types
            ]
            existing = _existing(conn, [(sid, e.event_id) for sid, e in wanted])
            fresh: list[dict[str, Any]] = []
            again: list[int] = []
            for sid, event in wanted:
                found = existing.get((sid, event.event_id))
                if found is None:
                    fresh.append(
                        {
                            "subscription_id": sid,
                            "event_id": event.event_id,
                            "event_type": event.type,
                            "channel": channel,
                            "subject": event.subject,
                            "position": event.position,
                            "occurred_at": event.occurred_at,
                            "created_at": now,
                            **_new_series(now),
                        }
                    )
                elif found[1] != DeliveryState.PENDING.value:
                    again.append(found[0])
            if fresh:
                conn.execute(insert(deliveries), fresh)
            for chunk in _chunks(again, 500):
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.delivery_id.in_(chunk))
                    .values(**_new_series(now))
                )
            count = len(fresh) + len(again)
            if count:
                _audit(
                    uow,
                    "webhook.deliveries_resent",
                    channel,
                    actor,
                    again,
                    extra={"from": start.isoformat(), "to": end.isoformat(), "count": count},
                )
            return count

        return await self.store.write(resend)


def _find(conn: Connection, delivery_id: int) -> Delivery | None:
    row = conn.execute(
        select(deliveries).where(deliveries.c.delivery_id == delivery_id)
    ).one_or_none()
    return None if row is None else Delivery.from_row(row)


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _existing(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, str]]:
    """(subscription, event) -> (delivery id, state) of the deliveries that exist."""
    found: dict[tuple[str, str], tuple[int, str]] = {}
    for chunk in _chunks(keys, 500):
        rows = conn.execute(
            select(
                deliveries.c.subscription_id,
                deliveries.c.event_id,
                deliveries.c.delivery_id,
                deliveries.c.state,
            ).where(
                and_(tuple_(deliveries.c.subscription_id, deliveries.c.event_id).in_(list(chunk)))
            )
        )
        for row in rows:
            found[(row.subscription_id, row.event_id)] = (row.delivery_id, row.state)
    return found


def _audit(
    uow: UnitOfWork,
    type_: str,
    channel: str | None,
    actor: str,
    delivery_ids: Sequence[int],
    *,
    extra: dict[str, Any] | None = None,
) -> None:
    uow.emit(
        type_,
        source=SOURCE,
        subject=f"webhook-deliveries/{channel or 'all'}",
        channel=channel,
        data={
            "actor": actor,
            "delivery_ids": list(delivery_ids[:100]),
            "count": len(delivery_ids),
            **(extra or {}),
        },
    )
