"""The partner event feed: the calling channel's events in commit order, with stable cursors.

(No `from __future__ import annotations` here: FastAPI reads the models from the annotations of
functions defined inside the factory.)
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Security
from pydantic import BaseModel, Field

from contracts import EventEnvelope
from gateway_infra.openapi import problem_responses
from gateway_infra.outbox import CursorPurged, EventFeed
from gateway_infra.problems import GONE, ProblemError
from partner_api.edge import Partner, PartnerRoute, partner

PARTNER_EVENT_TYPES: tuple[str, ...] = (
    "order.received",
    "order.pending_confirmed",
    "order.accepted",
    "order.rejected",
    "order.cancelled",
    "order.released",
    "order.shipped",
    "order.invoiced",
    "order.settled",
    "shipment.recorded",
    "availability.changed",
    "price.changed",
    "return.authorized",
    "return.refused",
    "return.received",
    "return.inspected",
    "return.refunded",
    "return.closed",
)
"""Event types a channel's partner receives about its own orders, offers and returns; everything
else (reservations, exceptions, profile changes, ERP and WMS documents) stays inside."""

CURSOR_PATTERN = r"^[0-9]{1,18}$"


class EventPage(BaseModel):
    """The calling channel's events after the cursor, oldest first."""

    items: list[EventEnvelope]
    next_cursor: str = Field(
        description=(
            "Pass as `after` to read on. Equal to the cursor sent when nothing new came: keep "
            "polling with it. Stable: the same cursor always continues at the same event."
        )
    )


def build_events_router() -> APIRouter:
    """GET /events: the same envelope in every version (each event type has its own version)."""
    router = APIRouter(
        route_class=PartnerRoute,
        prefix="/events",
        tags=["events"],
        responses=problem_responses(401, 403, 410, 422, 429),
    )

    @router.get(
        "",
        summary="The calling channel's events in commit order",
        description=(
            "Events about the channel's orders and offers, in the order they were committed. "
            "Nothing is skipped: an event committed late never appears before a cursor already "
            "handed out. Deduplicate on the event `id`. Events are kept for the retention the "
            "gateway is configured with (30 days unless configured otherwise): a cursor older "
            "than the events purged since answers 410; start again without `after` (the oldest "
            "event kept) and reconcile from the order and availability endpoints."
        ),
        response_model=EventPage,
    )
    async def events(
        request: Request,
        caller: Annotated[Partner, Security(partner, scopes=["events:read"])],
        after: Annotated[
            str | None,
            Query(pattern=CURSOR_PATTERN, description="A next_cursor from an earlier page."),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> Any:
        feed: EventFeed = request.app.state.events
        try:
            page = await feed.page(
                after=int(after or 0),
                limit=limit,
                channel=caller.channel,
                types=PARTNER_EVENT_TYPES,
            )
        except CursorPurged as exc:
            raise ProblemError(
                GONE,
                f"events after cursor {exc.after} up to {exc.purged_through} are no longer kept; "
                "read again without `after`",
            ) from exc
        return EventPage(
            items=[sequenced.event for sequenced in page.events],
            next_cursor=str(page.next_position),
        )

    return router
