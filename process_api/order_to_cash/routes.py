"""HTTP surface of order-to-cash for internal apps (/process/v1/orders): thin handlers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, Security
from pydantic import BaseModel, ConfigDict, Field

from contracts import Order, OrderStatus, OrderSubmission
from contracts.common import ChannelCode, Identifier, UtcDateTime
from gateway_infra.auth.dependencies import authenticate
from gateway_infra.openapi import operation_link, problem_responses
from gateway_infra.problems import NOT_FOUND, ProblemError
from process_api.order_to_cash.service import OrderNotFound, OrderService
from process_api.problems import ORDER_REJECTED


def get_order_service(request: Request) -> OrderService:
    service: OrderService = request.app.state.orders
    return service


OrderServiceDep = Annotated[OrderService, Depends(get_order_service)]

READ = [Security(authenticate, scopes=["process:orders:read"])]
WRITE = [Security(authenticate, scopes=["process:orders:write"])]

router = APIRouter(prefix="/v1/orders", tags=["orders"], responses=problem_responses(401, 403, 422))
# Where a client goes from an order it holds: read it, cancel it.
READ_LINK = operation_link(
    "/v1/orders/{order_id}", "get", "Read this order.", order_id="$response.body#/order_id"
)
CANCEL_LINK = operation_link(
    "/v1/orders/{order_id}/cancel",
    "post",
    "Cancel this order while it has not shipped.",
    order_id="$response.body#/order_id",
)
ORDER_LINKS = {"GetOrder": READ_LINK, "CancelOrder": CANCEL_LINK}


@router.post(
    "",
    summary="Submit a channel order",
    status_code=201,
    dependencies=WRITE,
    responses={
        200: {
            "model": Order,
            "description": "This channel order was submitted before; as it is.",
            "links": ORDER_LINKS,
        },
        201: {"description": "Validated by the ERP and accepted.", "links": ORDER_LINKS},
        202: {
            "model": Order,
            "description": "Recorded, stock reserved; ERP validation deferred and retried.",
            "links": ORDER_LINKS,
        },
        **problem_responses(409, 413, 415),
    },
)
async def submit_order(
    service: OrderServiceDep, submission: OrderSubmission, request: Request, response: Response
) -> Order:
    """Record the order once per (channel, channel_order_id) and validate it with the ERP."""
    result = await service.submit(submission, actor="process_api")
    order = result.order
    location = request.url_for("process_get_order", order_id=order.order_id)
    response.headers["Location"] = str(location)
    if not result.created:
        response.status_code = 200
    elif order.status is OrderStatus.REJECTED:
        raise ProblemError(
            ORDER_REJECTED,
            f"{len(order.rejections)} line(s) rejected",
            order_id=order.order_id,
            rejections=[r.model_dump(mode="json") for r in order.rejections],
        )
    elif order.status in (OrderStatus.RECEIVED, OrderStatus.RESERVED):
        response.status_code = 202
    return order


@router.get(
    "/{order_id}",
    summary="One order with its history",
    name="process_get_order",
    responses={200: {"links": {"CancelOrder": CANCEL_LINK}}, **problem_responses(404)},
    dependencies=READ,
)
async def get_order(service: OrderServiceDep, order_id: Annotated[Identifier, Path()]) -> Order:
    order = await service.get(order_id)
    if order is None:
        raise ProblemError(NOT_FOUND, f"no order {order_id!r}")
    return order


class OrderList(BaseModel):
    """A page of orders, oldest change first."""

    items: list[Order]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; absent on the last page."
    )


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$")


@router.get("", summary="Orders by last change, filtered", dependencies=READ)
async def list_orders(
    service: OrderServiceDep,
    channel: Annotated[ChannelCode | None, Query()] = None,
    status: Annotated[list[OrderStatus] | None, Query(description="One or more statuses.")] = None,
    updated_after: Annotated[
        UtcDateTime | None, Query(description="Changed after (RFC 3339).")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> OrderList:
    page = await service.list(
        channel=channel,
        statuses=status or (),
        updated_after=updated_after,
        cursor=cursor,
        limit=limit,
    )
    return OrderList(items=page.items, next_cursor=page.next_cursor)


@router.post(
    "/{order_id}/cancel",
    summary="Cancel an order that has not shipped (idempotent)",
    dependencies=WRITE,
    responses=problem_responses(404, 409, 413, 415),
)
async def cancel_order(
    service: OrderServiceDep,
    order_id: Annotated[Identifier, Path()],
    request: CancelRequest | None = None,
) -> Order:
    try:
        return await service.cancel(
            order_id, actor="process_api", reason=request.reason if request else None
        )
    except OrderNotFound as exc:
        raise ProblemError(NOT_FOUND, f"no order {order_id!r}") from exc
