"""HTTP surface of webhook delivery operations for internal apps (/process/v1/deliveries)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Security
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.common import ChannelCode, UtcDateTime
from gateway_infra.auth.dependencies import authenticate
from gateway_infra.auth.tokens import Principal
from gateway_infra.delivery import (
    Attempt,
    DeadLetterQuery,
    Delivery,
    NotReplayable,
    TooManyToResend,
    UnknownDelivery,
)
from gateway_infra.openapi import problem_responses
from gateway_infra.problems import NOT_FOUND, ProblemError, ProblemType
from process_api.deliveries.service import DeliveryOperations

DELIVERY_NOT_REPLAYABLE = ProblemType(
    "delivery-not-replayable", "Only a dead-lettered delivery can be replayed", 409
)
RESEND_TOO_LARGE = ProblemType(
    "resend-too-large", "The time range holds too many events for one re-send", 422
)
SUBSCRIPTION_ID_PATTERN = r"^whk_[0-9a-f]{1,36}$"
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"


def get_operations(request: Request) -> DeliveryOperations:
    operations: DeliveryOperations = request.app.state.deliveries
    return operations


OperationsDep = Annotated[DeliveryOperations, Depends(get_operations)]
Reader = Annotated[Principal, Security(authenticate, scopes=["process:deliveries:read"])]
Writer = Annotated[Principal, Security(authenticate, scopes=["process:deliveries:write"])]
DeliveryId = Annotated[int, Path(ge=1, le=2**62, description="The delivery's id.")]
# Routed as `{delivery_id:int}`: only digits reach those routes, so another method on /replay or
# /resend answers 405 with the methods it allows, not a 422 for a delivery id.

router = APIRouter(
    prefix="/v1/deliveries", tags=["deliveries"], responses=problem_responses(401, 403, 422)
)


def _actor(principal: Principal) -> str:
    return f"process:{principal.client_id}"


class DeadLetterPage(BaseModel):
    """Dead letters by delivery id; pass next_cursor as `cursor` to read on."""

    items: list[Delivery]
    next_cursor: str | None


class AttemptList(BaseModel):
    """Every attempt made to deliver, oldest first."""

    items: list[Attempt]


class ReplayRequest(BaseModel):
    """Which dead letters to replay: those of a channel, optionally narrowed."""

    model_config = ConfigDict(extra="forbid")

    channel: ChannelCode
    event_type: str | None = Field(default=None, max_length=100, pattern=EVENT_TYPE_PATTERN)
    subscription_id: str | None = Field(default=None, pattern=SUBSCRIPTION_ID_PATTERN)
    dead_since: UtcDateTime | None = None
    dead_until: UtcDateTime | None = None


class Replayed(BaseModel):
    replayed: int = Field(description="Dead letters put back on their way.")


class ResendRequest(BaseModel):
    """Send a channel's events of a time range again, delivered before or not."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    channel: ChannelCode
    start: UtcDateTime = Field(alias="from", description="Events that occurred at or after this.")
    end: UtcDateTime = Field(alias="to", description="... and before this.")
    subscription_id: str | None = Field(
        default=None,
        pattern=SUBSCRIPTION_ID_PATTERN,
        description="Only to this webhook; default: every active webhook of the channel.",
    )
    event_types: list[Annotated[str, Field(pattern=EVENT_TYPE_PATTERN)]] | None = Field(
        default=None, max_length=50, description="Only these types; default: all."
    )

    @model_validator(mode="after")
    def _range(self) -> ResendRequest:
        if self.end <= self.start:
            raise ValueError("`to` must be after `from`")
        return self


class Resent(BaseModel):
    scheduled: int = Field(description="Deliveries scheduled (one per event and webhook).")


@router.get(
    "/dead-letters",
    summary="Deliveries that gave up (dead letters), filtered",
    response_model=DeadLetterPage,
)
async def dead_letters(
    operations: OperationsDep,
    _caller: Reader,
    channel: Annotated[ChannelCode | None, Query()] = None,
    subscription_id: Annotated[str | None, Query(pattern=SUBSCRIPTION_ID_PATTERN)] = None,
    event_type: Annotated[str | None, Query(max_length=100, pattern=EVENT_TYPE_PATTERN)] = None,
    dead_since: Annotated[UtcDateTime | None, Query()] = None,
    dead_until: Annotated[UtcDateTime | None, Query()] = None,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeadLetterPage:
    page = await operations.dead_letters(
        DeadLetterQuery(
            channel=channel,
            subscription_id=subscription_id,
            event_type=event_type,
            dead_since=dead_since,
            dead_until=dead_until,
        ),
        cursor=cursor,
        limit=limit,
    )
    return DeadLetterPage(items=page.items, next_cursor=page.next_cursor)


@router.post(
    "/replay",
    summary="Replay every dead letter of a channel (optionally of one type, webhook, period)",
    response_model=Replayed,
    responses=problem_responses(413, 415),
)
async def replay_matching(
    operations: OperationsDep, caller: Writer, request: ReplayRequest
) -> Replayed:
    count = await operations.replay_matching(
        DeadLetterQuery(
            channel=request.channel,
            subscription_id=request.subscription_id,
            event_type=request.event_type,
            dead_since=request.dead_since,
            dead_until=request.dead_until,
        ),
        actor=_actor(caller),
    )
    return Replayed(replayed=count)


@router.post(
    "/resend",
    summary="Send a channel's events of a time range again to its webhooks",
    description=(
        "Every event of the channel that occurred in [from, to) is delivered again to the "
        "channel's active webhooks that take its type, delivered before or not; receivers dedupe "
        "on webhook-id. Deliveries still pending are left as they are."
    ),
    response_model=Resent,
    responses=problem_responses(413, 415),
)
async def resend(operations: OperationsDep, caller: Writer, request: ResendRequest) -> Resent:
    try:
        count = await operations.resend(
            channel=request.channel,
            start=request.start,
            end=request.end,
            actor=_actor(caller),
            subscription_id=request.subscription_id,
            event_types=request.event_types,
        )
    except TooManyToResend as exc:
        raise ProblemError(RESEND_TOO_LARGE, str(exc)) from exc
    return Resent(scheduled=count)


@router.get(
    "/{delivery_id:int}",
    summary="One delivery",
    response_model=Delivery,
    responses=problem_responses(404),
)
async def get_delivery(
    operations: OperationsDep, _caller: Reader, delivery_id: DeliveryId
) -> Delivery:
    found = await operations.get(delivery_id)
    if found is None:
        raise ProblemError(NOT_FOUND, f"no delivery {delivery_id}")
    return found


@router.get(
    "/{delivery_id:int}/attempts",
    summary="Every attempt of one delivery: status, latency, response code, error",
    response_model=AttemptList,
    responses=problem_responses(404),
)
async def delivery_attempts(
    operations: OperationsDep, _caller: Reader, delivery_id: DeliveryId
) -> AttemptList:
    found = await operations.attempts(delivery_id)
    if found is None:
        raise ProblemError(NOT_FOUND, f"no delivery {delivery_id}")
    return AttemptList(items=found)


@router.post(
    "/{delivery_id:int}/replay",
    summary="Replay one dead letter: a new series of attempts, same webhook-id",
    response_model=Delivery,
    responses=problem_responses(404, 409),
)
async def replay_one(
    operations: OperationsDep, caller: Writer, delivery_id: DeliveryId
) -> Delivery:
    try:
        return await operations.replay(delivery_id, actor=_actor(caller))
    except UnknownDelivery as exc:
        raise ProblemError(NOT_FOUND, str(exc)) from exc
    except NotReplayable as exc:
        raise ProblemError(DELIVERY_NOT_REPLAYABLE, str(exc)) from exc
