"""HTTP surface of return-to-refund for internal apps (/process/v1/returns): thin handlers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, Security

from contracts.common import ChannelCode, Identifier, UtcDateTime
from contracts.returns import ChannelRefund, Return, ReturnStatus
from gateway_infra.auth.dependencies import authenticate
from gateway_infra.auth.tokens import Principal
from gateway_infra.openapi import operation_link, problem_responses
from gateway_infra.problems import NOT_FOUND, VALIDATION_ERROR, ProblemError
from process_api.problems import RETURN_REFUSED
from process_api.returns.models import (
    ApproveRequest,
    CloseRequest,
    InspectRequest,
    ReceiveRequest,
    ReturnCreate,
    ReturnList,
    ReturnsReconciliation,
    TransitRequest,
)
from process_api.returns.port import Outcome, UnknownOrder, UnknownReturn
from process_api.returns.service import ReturnsService

READ_SCOPE = "process:returns:read"
WRITE_SCOPE = "process:returns:write"


def get_returns(request: Request) -> ReturnsService:
    service: ReturnsService = request.app.state.returns
    return service


ReturnsDep = Annotated[ReturnsService, Depends(get_returns)]
ReturnId = Annotated[Identifier, Path(description="The gateway's return id.")]
Reader = [Security(authenticate, scopes=[READ_SCOPE])]
Writer = Annotated[Principal, Security(authenticate, scopes=[WRITE_SCOPE])]

router = APIRouter(
    prefix="/v1/returns", tags=["returns"], responses=problem_responses(401, 403, 422)
)

STEP_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Recorded (now or before)."},
    202: {
        "model": Return,
        "description": "Recorded by the gateway; the WMS or ERP did not answer, a timer "
        "finishes the step.",
    },
    **problem_responses(404, 409, 413, 415),
}


def _actor(principal: Principal) -> str:
    return f"client:{principal.client_id}"


def _not_found(return_id: str) -> ProblemError:
    return ProblemError(NOT_FOUND, f"no return {return_id!r}")


def _answer(outcome: Outcome, response: Response) -> Return:
    if outcome.waiting:
        response.status_code = 202
    return outcome.ret


RETURN_LINKS = {
    "GetReturn": operation_link(
        "/v1/returns/{return_id}", "get", "Read this return.", return_id="$response.body#/return_id"
    )
}


@router.post(
    "",
    summary="Request a return on behalf of a channel",
    status_code=201,
    responses={
        200: {
            "model": Return,
            "description": "This channel return was requested before; as it is.",
            "links": RETURN_LINKS,
        },
        201: {"description": "Authorized by the channel's policy.", "links": RETURN_LINKS},
        **problem_responses(404, 409, 413, 415),
    },
)
async def create_return(
    service: ReturnsDep,
    body: ReturnCreate,
    principal: Writer,
    request: Request,
    response: Response,
) -> Return:
    """Decide a channel's return by its channel profile: the order's line must have shipped,
    the return window (counted from the line's last shipment) must be open, and no line may
    return more than shipped minus already returned. A refusal answers 409 `return-refused`
    listing every reason; an unknown order, or one of another channel, 404. The same channel
    return id again answers the return as it is (other lines: 409 `return-conflict`)."""
    try:
        outcome = await service.create(body, actor=_actor(principal))
    except UnknownOrder as exc:
        raise ProblemError(
            NOT_FOUND, f"no order {body.order_id!r} of channel {body.channel}"
        ) from exc
    ret = outcome.ret
    response.headers["Location"] = str(
        request.url_for("process_get_return", return_id=ret.return_id)
    )
    if ret.status is ReturnStatus.REFUSED:
        raise ProblemError(
            RETURN_REFUSED,
            f"{len(ret.refusals)} reason(s): " + "; ".join(r.detail for r in ret.refusals),
            return_id=ret.return_id,
            reasons=[r.model_dump(mode="json") for r in ret.refusals],
        )
    if not outcome.created:
        response.status_code = 200
    return ret


@router.get(
    "/reconciliation",
    summary="Reconciliation of a period's returns: ERP credit notes, WMS receipts, channel refunds",
    dependencies=Reader,
)
async def reconciliation(
    service: ReturnsDep,
    start: Annotated[UtcDateTime, Query(alias="from", description="Period start (RFC 3339).")],
    end: Annotated[UtcDateTime, Query(alias="to", description="Period end, excluded.")],
    channel: Annotated[ChannelCode | None, Query()] = None,
) -> ReturnsReconciliation:
    """The returns created in [from, to) as they stand now, with totals per currency and every
    mismatch between what the ERP credited, what the WMS received and what the channel refunded
    on its own, each with its amount."""
    if end <= start:
        raise ProblemError(
            VALIDATION_ERROR,
            "the period must end after it starts",
            errors=[{"parameter": "to", "in": "query", "detail": "must be after `from`"}],
        )
    return await service.reconciliation(start=start, end=end, channel=channel)


@router.get(
    "/{return_id}",
    summary="One return with its lines, receipts, inspections, refunds and history",
    name="process_get_return",
    dependencies=Reader,
    responses=problem_responses(404),
)
async def get_return(service: ReturnsDep, return_id: ReturnId) -> Return:
    found = await service.get(return_id)
    if found is None:
        raise _not_found(return_id)
    return found


@router.get("", summary="Returns by last change, filtered", dependencies=Reader)
async def list_returns(
    service: ReturnsDep,
    channel: Annotated[ChannelCode | None, Query()] = None,
    status: Annotated[list[ReturnStatus] | None, Query(description="One or more.")] = None,
    order_id: Annotated[Identifier | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ReturnList:
    return await service.list(
        channel=channel, statuses=status or (), order_id=order_id, cursor=cursor, limit=limit
    )


@router.post(
    "/{return_id}/in-transit",
    summary="The goods are on their way back (idempotent)",
    responses=problem_responses(404, 409, 413, 415),
)
async def mark_in_transit(
    service: ReturnsDep,
    return_id: ReturnId,
    principal: Writer,
    body: TransitRequest | None = None,
) -> Return:
    """authorized -> in_transit."""
    try:
        outcome = await service.mark_in_transit(
            return_id, actor=_actor(principal), note=body.note if body else None
        )
    except UnknownReturn as exc:
        raise _not_found(return_id) from exc
    return outcome.ret


@router.post(
    "/{return_id}/receive",
    summary="Record what arrived at the warehouse (idempotent)",
    responses=STEP_RESPONSES,
)
async def receive(
    service: ReturnsDep,
    return_id: ReturnId,
    body: ReceiveRequest,
    principal: Writer,
    response: Response,
) -> Return:
    """The WMS records the receipt (per line; a line not listed received nothing), then the
    return is received and lines the channel refunds on receipt are credited in the ERP."""
    try:
        outcome = await service.receive(return_id, body, actor=_actor(principal))
    except UnknownReturn as exc:
        raise _not_found(return_id) from exc
    return _answer(outcome, response)


@router.post(
    "/{return_id}/inspect",
    summary="Record the grade and disposition of every received unit (idempotent)",
    responses=STEP_RESPONSES,
)
async def inspect(
    service: ReturnsDep,
    return_id: ReturnId,
    body: InspectRequest,
    principal: Writer,
    response: Response,
) -> Return:
    """Resellable units may be restocked (sellable again, availability republished); damaged or
    missing ones are quarantined or scrapped, never sellable. Every received unit is graded.
    A return the channel refunded on its own is reconciled now: its refund is credited in the
    ERP and bad goods raise a claim against the channel."""
    try:
        outcome = await service.inspect(return_id, body, actor=_actor(principal))
    except UnknownReturn as exc:
        raise _not_found(return_id) from exc
    return _answer(outcome, response)


@router.post(
    "/{return_id}/approve-refund",
    summary="Approve the refund of an inspected return (idempotent)",
    responses={
        200: {"description": "Refunded: the ERP posted the credit note; the channel is told."},
        202: {
            "model": Return,
            "description": "Approved; the ERP did not answer, a timer posts the credit note.",
        },
        **problem_responses(404, 409, 413, 415),
    },
)
async def approve_refund(
    service: ReturnsDep,
    return_id: ReturnId,
    principal: Writer,
    response: Response,
    body: ApproveRequest | None = None,
) -> Return:
    """inspected -> refund_approved -> refunded. By default every unit graded resellable of the
    lines refunded after inspection; or the units listed. A return not inspected yet answers
    409 `return-state`: no refund before inspection."""
    try:
        outcome = await service.approve_refund(return_id, body, actor=_actor(principal))
    except UnknownReturn as exc:
        raise _not_found(return_id) from exc
    return _answer(outcome, response)


@router.post(
    "/{return_id}/channel-refund",
    summary="The channel refunded its customer on its own (idempotent)",
    responses=problem_responses(404, 409, 413, 415),
)
async def mark_channel_refunded(
    service: ReturnsDep, return_id: ReturnId, body: ChannelRefund, principal: Writer
) -> Return:
    """The return is marked channel refunded: it is still received and inspected, the ERP
    credits the channel's refund after inspection, and bad goods raise a claim."""
    try:
        outcome = await service.mark_channel_refunded(return_id, body, actor=_actor(principal))
    except UnknownReturn as exc:
        raise _not_found(return_id) from exc
    return outcome.ret


@router.post(
    "/{return_id}/close",
    summary="Close a refunded or inspected return (idempotent)",
    responses=problem_responses(404, 409, 413, 415),
)
async def close(
    service: ReturnsDep,
    return_id: ReturnId,
    principal: Writer,
    body: CloseRequest | None = None,
) -> Return:
    try:
        outcome = await service.close(
            return_id, actor=_actor(principal), reason=body.reason if body else None
        )
    except UnknownReturn as exc:
        raise _not_found(return_id) from exc
    return outcome.ret
