"""The sender: claims due deliveries, signs and sends them, records every attempt.

Claims are leased (FOR UPDATE SKIP LOCKED on PostgreSQL, so several gateway processes share the
work and no attempt is made twice while its lease runs); a process killed mid-send leaves a
lease that runs out, and the delivery is sent again by whoever claims it next: delivery is at
least once, and receivers dedupe on `webhook-id`, the event id. Deliveries of one subscription
and subject (an order, say) go out in commit order: a later one waits while an earlier one is
still pending, until it is delivered or dead-lettered. Each endpoint has at most a few calls in
flight. A failed attempt is retried with exponential backoff and jitter; after the last attempt,
or past the maximum age, the delivery is dead (a dead letter, replayable). An endpoint whose
every attempt has failed for long enough is disabled, and `on_endpoint_disabled` runs in that
same transaction (the gateway opens an exception there).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import Connection, func, insert, or_, select, update

from gateway_infra.auth.secret_box import SecretBox
from gateway_infra.correlation import correlation_id_var, new_correlation_id, outbound_headers
from gateway_infra.database import for_update
from gateway_infra.delivery.models import (
    AttemptOutcome,
    DeliveryState,
    DisabledEndpoint,
    SubscriptionState,
)
from gateway_infra.delivery.policy import DeliveryPolicy
from gateway_infra.delivery.safety import DestinationRefused
from gateway_infra.delivery.signing import signature_headers
from gateway_infra.delivery.subscriptions import SOURCE, signing_secrets
from gateway_infra.delivery.tables import attempts, deliveries, subscriptions
from gateway_infra.metrics import WEBHOOK_ATTEMPTS, WEBHOOK_LATENCY
from gateway_infra.outbox import ENVELOPE_COLUMNS, envelope_of
from gateway_infra.tables import outbox
from gateway_infra.tracing import span
from gateway_infra.unit_of_work import Store, UnitOfWork

log = logging.getLogger("gateway.delivery.sender")

EndpointDisabledHandler = Callable[[UnitOfWork, DisabledEndpoint], None]
"""Runs inside the transaction that disables the endpoint: what it writes commits with it."""

MAX_ERROR_LENGTH = 2000


@dataclass(frozen=True)
class Claimed:
    """A delivery leased to this sender for one attempt, with what it needs to send it."""

    delivery_id: int
    subscription_id: str
    channel: str
    url: str
    event_id: str
    attempt: int
    series_started_at: datetime
    lease_token: str
    body: bytes | None
    correlation_id: str | None
    secrets: list[str]
    origin_correlation_id: str | None = None
    event_type: str | None = None


@dataclass(frozen=True)
class AttemptResult:
    """How one call went."""

    outcome: AttemptOutcome
    started_at: datetime
    latency_ms: int
    status_code: int | None = None
    response_bytes: int | None = None
    error: str | None = None


def envelope_body(envelope: Any) -> bytes:
    """The request body: the event envelope as compact JSON (exactly the bytes signed)."""
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


class Sender:
    """Sends due deliveries of every active subscription, a batch of claims at a time."""

    def __init__(
        self,
        store: Store,
        box: SecretBox,
        http: httpx.AsyncClient,
        policy: DeliveryPolicy,
        *,
        owner: str | None = None,
        rng: random.Random | None = None,
        on_endpoint_disabled: EndpointDisabledHandler | None = None,
    ) -> None:
        self.store = store
        self.box = box
        self.http = http
        self.policy = policy
        self.owner = owner or f"sender-{uuid.uuid4().hex[:12]}"
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.on_endpoint_disabled = on_endpoint_disabled
        self._wake = asyncio.Event()

    def nudge(self) -> None:
        """New deliveries exist: claim without waiting for the next poll."""
        self._wake.set()

    # ------------------------------------------------------------------ claiming

    def _claim(self, conn: Connection, limit: int) -> list[Claimed]:
        now = self.store.clock.now()
        d, s = deliveries, subscriptions
        earlier = deliveries.alias("earlier")
        waits_for_earlier = (
            select(earlier.c.delivery_id)
            .where(
                earlier.c.subscription_id == d.c.subscription_id,
                earlier.c.subject == d.c.subject,
                earlier.c.position < d.c.position,
                earlier.c.state == DeliveryState.PENDING.value,
            )
            .exists()
        )
        due = (
            select(d.c.delivery_id, d.c.subscription_id)
            .select_from(d.join(s, s.c.subscription_id == d.c.subscription_id))
            .where(
                d.c.state == DeliveryState.PENDING.value,
                d.c.next_attempt_at <= now,
                or_(d.c.lease_until.is_(None), d.c.lease_until <= now),
                s.c.state == SubscriptionState.ACTIVE.value,
                ~waits_for_earlier,
            )
            .order_by(d.c.next_attempt_at, d.c.position, d.c.delivery_id)
            .limit(min(limit * 2, 1000))
        )
        if conn.dialect.name == "postgresql":
            due = due.with_for_update(of=d, skip_locked=True)
        candidates = conn.execute(due).all()
        if not candidates:
            return []
        endpoint_ids = sorted({c.subscription_id for c in candidates})
        in_flight: dict[str, int] = {
            row[0]: int(row[1])
            for row in conn.execute(
                select(d.c.subscription_id, func.count())
                .where(
                    d.c.subscription_id.in_(endpoint_ids),
                    d.c.state == DeliveryState.PENDING.value,
                    d.c.lease_until > now,
                )
                .group_by(d.c.subscription_id)
            )
        }
        picked: list[int] = []
        for candidate in candidates:
            if len(picked) >= limit:
                break
            busy = in_flight.get(candidate.subscription_id, 0)
            if busy >= self.policy.max_in_flight_per_endpoint:
                continue
            in_flight[candidate.subscription_id] = busy + 1
            picked.append(candidate.delivery_id)
        if not picked:
            return []
        token = f"{self.owner}:{uuid.uuid4().hex[:12]}"
        conn.execute(
            update(d)
            .where(d.c.delivery_id.in_(picked))
            .values(
                lease_owner=token,
                lease_until=now + self.policy.lease,
                attempts=d.c.attempts + 1,
                updated_at=now,
            )
        )
        rows = conn.execute(
            select(
                d.c.delivery_id,
                d.c.subscription_id,
                d.c.channel,
                d.c.event_id,
                d.c.attempts,
                d.c.series_started_at,
                s.c.url,
                s.c.secret,
                s.c.previous_secret,
                s.c.previous_secret_expires_at,
                *ENVELOPE_COLUMNS,
                outbox.c.correlation_id,
                outbox.c.origin_correlation_id,
                outbox.c.type,
            )
            .select_from(
                d.join(s, s.c.subscription_id == d.c.subscription_id).outerjoin(
                    outbox, outbox.c.event_id == d.c.event_id
                )
            )
            .where(d.c.delivery_id.in_(picked))
            .order_by(d.c.next_attempt_at, d.c.position, d.c.delivery_id)
        ).all()
        return [
            Claimed(
                delivery_id=row.delivery_id,
                subscription_id=row.subscription_id,
                channel=row.channel,
                url=row.url,
                event_id=row.event_id,
                attempt=row.attempts,
                series_started_at=row.series_started_at,
                lease_token=token,
                body=None if (envelope := envelope_of(row)) is None else envelope_body(envelope),
                correlation_id=row.correlation_id,
                origin_correlation_id=row.origin_correlation_id,
                event_type=row.type,
                secrets=signing_secrets(self.box, row, now),
            )
            for row in rows
        ]

    def _anything_due(self, conn: Connection) -> bool:
        now = self.store.clock.now()
        found = conn.execute(
            select(deliveries.c.delivery_id)
            .where(
                deliveries.c.state == DeliveryState.PENDING.value,
                deliveries.c.next_attempt_at <= now,
                or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until <= now),
            )
            .limit(1)
        ).first()
        return found is not None

    async def claim(self, limit: int) -> list[Claimed]:
        """Lease up to limit due deliveries to this sender (one attempt each).

        Reads first: an idle sender does not take the write lock."""
        if not await self.store.database.read(self._anything_due):
            return []
        return await self.store.database.write(lambda conn: self._claim(conn, limit))

    # ------------------------------------------------------------------ sending

    async def attempt(self, claimed: Claimed) -> AttemptResult:
        """Make the call: signed now, pinned to a checked address, capped in time and size."""
        started_at = self.store.clock.now()
        t0 = time.perf_counter()

        def result(outcome: AttemptOutcome, **values: Any) -> AttemptResult:
            latency_ms = int((time.perf_counter() - t0) * 1000)
            error = values.pop("error", None)
            return AttemptResult(
                outcome,
                started_at,
                latency_ms,
                error=None if error is None else error[:MAX_ERROR_LENGTH],
                **values,
            )

        if claimed.body is None:
            return result(AttemptOutcome.FAILED, error="the event is no longer stored")
        headers = {
            "content-type": "application/json",
            **signature_headers(
                message_id=claimed.event_id,
                timestamp=started_at,
                body=claimed.body,
                secrets_in_use=claimed.secrets,
            ),
        }
        # The correlation id of the request that caused the event, and this attempt's span.
        headers.update(outbound_headers())
        status: int | None = None
        read = 0
        error: str | None = None
        cap = self.policy.max_response_bytes
        try:
            async with (
                asyncio.timeout(self.policy.timeout_seconds),
                self.http.stream("POST", claimed.url, content=claimed.body, headers=headers) as r,
            ):
                status = r.status_code
                async for chunk in r.aiter_raw():
                    read += len(chunk)
                    if read >= cap:
                        if read > cap:
                            error = f"response cut after {cap} bytes"
                        read = cap
                        break
        except DestinationRefused as exc:
            return result(AttemptOutcome.REFUSED, error=f"destination refused: {exc}")
        except TimeoutError:
            error = f"no complete answer within {self.policy.timeout_seconds:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - any other failure of the call is a failed attempt
            error = f"{type(exc).__name__}: {exc}"
        if status is not None and 200 <= status < 300:
            return result(
                AttemptOutcome.SUCCEEDED, status_code=status, response_bytes=read, error=error
            )
        if status is not None and error is None:
            error = (
                f"redirect not followed (HTTP {status})"
                if 300 <= status < 400
                else f"HTTP {status}"
            )
        return result(
            AttemptOutcome.FAILED,
            status_code=status,
            response_bytes=read if status is not None else None,
            error=error or "failed",
        )

    # ------------------------------------------------------------------ recording

    def record(self, uow: UnitOfWork, claimed: Claimed, result: AttemptResult) -> None:
        """Keep the attempt, then move the delivery on (if it is still ours) and the endpoint."""
        conn, now = uow.conn, uow.now
        conn.execute(
            insert(attempts).values(
                delivery_id=claimed.delivery_id,
                attempt=claimed.attempt,
                started_at=result.started_at,
                outcome=result.outcome.value,
                latency_ms=result.latency_ms,
                status_code=result.status_code,
                response_bytes=result.response_bytes,
                error=result.error,
                sender=self.owner,
            )
        )
        ours = (
            deliveries.c.delivery_id == claimed.delivery_id,
            deliveries.c.lease_owner == claimed.lease_token,
            deliveries.c.state == DeliveryState.PENDING.value,
        )
        released: dict[str, Any] = {
            "lease_owner": None,
            "lease_until": None,
            "last_status_code": result.status_code,
            "last_error": result.error,
            "updated_at": now,
        }
        if result.outcome is AttemptOutcome.SUCCEEDED:
            conn.execute(
                update(deliveries)
                .where(*ours)
                .values(state=DeliveryState.DELIVERED.value, delivered_at=now, **released)
            )
            conn.execute(
                update(subscriptions)
                .where(
                    subscriptions.c.subscription_id == claimed.subscription_id,
                    subscriptions.c.failing_since.is_not(None),
                )
                .values(failing_since=None, updated_at=now)
            )
            return
        exhausted = (
            claimed.attempt >= self.policy.retry.max_attempts
            or now - claimed.series_started_at >= self.policy.max_age
        )
        if exhausted:
            moved = dict(state=DeliveryState.DEAD.value, dead_at=now, **released)
        else:
            delay = self.policy.retry.delay_after(claimed.attempt, self.rng)
            moved = dict(next_attempt_at=now + delay, **released)
        conn.execute(update(deliveries).where(*ours).values(**moved))
        self._endpoint_failed(uow, claimed, result)

    def _endpoint_failed(self, uow: UnitOfWork, claimed: Claimed, result: AttemptResult) -> None:
        conn, now = uow.conn, uow.now
        query = select(subscriptions).where(
            subscriptions.c.subscription_id == claimed.subscription_id
        )
        query = for_update(conn, query)
        sub = conn.execute(query).one()
        if sub.state != SubscriptionState.ACTIVE.value:
            return
        if sub.failing_since is None:
            conn.execute(
                update(subscriptions)
                .where(subscriptions.c.subscription_id == sub.subscription_id)
                .values(failing_since=result.started_at, updated_at=now)
            )
            return
        if now - sub.failing_since < self.policy.disable_after:
            return
        hours = self.policy.disable_after.total_seconds() / 3600
        reason = f"every attempt failed for {hours:g} hours (last: {result.error})"[
            :MAX_ERROR_LENGTH
        ]
        conn.execute(
            update(subscriptions)
            .where(subscriptions.c.subscription_id == sub.subscription_id)
            .values(state=SubscriptionState.DISABLED.value, disabled_reason=reason, updated_at=now)
        )
        disabled = DisabledEndpoint(
            subscription_id=sub.subscription_id,
            channel=sub.channel,
            url=sub.url,
            failing_since=sub.failing_since,
            disabled_at=now,
            last_error=result.error,
        )
        uow.emit(
            "webhook.disabled",
            source=SOURCE,
            subject=f"webhook/{sub.subscription_id}",
            channel=sub.channel,
            data={
                "subscription_id": sub.subscription_id,
                "reason": reason,
                "failing_since": sub.failing_since.isoformat(),
            },
        )
        log.warning(
            "webhook endpoint disabled",
            extra={"subscription_id": sub.subscription_id, "channel": sub.channel},
        )
        if self.on_endpoint_disabled is not None:
            try:
                with conn.begin_nested():
                    self.on_endpoint_disabled(uow, disabled)
            except Exception:  # the endpoint is disabled all the same; the event tells
                log.exception("the endpoint-disabled handler failed")

    # ------------------------------------------------------------------ running

    async def deliver(self, claimed: Claimed) -> AttemptResult | None:
        """One attempt and its record; None when it could not be recorded (the lease expires
        and the delivery is attempted again)."""
        token = correlation_id_var.set(claimed.correlation_id or new_correlation_id())
        try:
            with span(
                "webhook delivery",
                kind="client",
                attributes={"gateway.delivery_id": claimed.delivery_id},
            ) as attempt_span:
                result = await self.attempt(claimed)
                attempt_span.set_attribute("gateway.outcome", result.outcome.value)
            WEBHOOK_ATTEMPTS.labels(result.outcome.value).inc()
            WEBHOOK_LATENCY.labels(result.outcome.value).observe(result.latency_ms / 1000)
            if result.outcome is not AttemptOutcome.SUCCEEDED:
                log.info(
                    "webhook attempt failed",
                    extra={
                        "delivery_id": claimed.delivery_id,
                        "subscription_id": claimed.subscription_id,
                        "attempt": claimed.attempt,
                        "error": result.error,
                    },
                )
            else:
                log.info(
                    "webhook delivered",
                    extra={
                        "delivery_id": claimed.delivery_id,
                        "subscription_id": claimed.subscription_id,
                        "event_id": claimed.event_id,
                        "event_type": claimed.event_type,
                        "origin_correlation_id": claimed.origin_correlation_id,
                        "attempt": claimed.attempt,
                        "status_code": result.status_code,
                    },
                )
            await self.store.write(lambda uow: self.record(uow, claimed, result))
            return result
        except Exception:
            log.exception("recording a webhook attempt failed")
            return None
        finally:
            correlation_id_var.reset(token)

    async def run_once(self, limit: int | None = None) -> int:
        """Claim what is due now (up to the concurrency), send it all, record it; how many."""
        claimed = await self.claim(limit or self.policy.sender_concurrency)
        await asyncio.gather(*(self.deliver(c) for c in claimed))
        return len(claimed)

    async def run_until_idle(self) -> int:
        """Run rounds until nothing is due at the clock's now; how many attempts were made."""
        total = 0
        while made := await self.run_once():
            total += made
        return total

    async def run_forever(self, poll_seconds: float) -> None:
        """Background loop: keeps up to the concurrency of calls in flight; stops when cancelled
        (calls in flight are abandoned: their leases run out and they are sent again)."""
        tasks: set[asyncio.Task[AttemptResult | None]] = set()
        try:
            while True:
                free = self.policy.sender_concurrency - len(tasks)
                claimed: list[Claimed] = []
                if free > 0:
                    try:
                        claimed = await self.claim(free)
                    except Exception:  # the next round tries again
                        log.exception("claiming webhook deliveries failed")
                for one in claimed:
                    task = asyncio.create_task(self.deliver(one))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if claimed and len(tasks) < self.policy.sender_concurrency:
                    continue
                waiter = asyncio.create_task(self._wake.wait())
                try:
                    await asyncio.wait(
                        {waiter, *tasks},
                        timeout=poll_seconds,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    waiter.cancel()
                self._wake.clear()
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
