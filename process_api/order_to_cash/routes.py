"""HTTP surface of order-to-cash for internal apps (/process/v1/orders): thin handlers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, Security

from contracts import Order, OrderStatus, OrderSubmission
from contracts.common import Identifier
from gateway_infra.auth.dependencies import authenticate
from gateway_infra.openapi import problem_responses
from gateway_infra.problems import NOT_FOUND, ProblemError
from process_api.order_to_cash.service import OrderService
from process_api.problems import ORDER_REJECTED


def get_order_service(request: Request) -> OrderService:
    service: OrderService = request.app.state.orders
    return service


OrderServiceDep = Annotated[OrderService, Depends(get_order_service)]

READ = [Security(authenticate, scopes=["process:orders:read"])]
WRITE = [Security(authenticate, scopes=["process:orders:write"])]

router = APIRouter(prefix="/v1/orders", tags=["orders"], responses=problem_responses(401, 403, 422))


@router.post(
    "",
    summary="Submit a channel order",
    status_code=201,
    dependencies=WRITE,
    responses={
        200: {"model": Order, "description": "This channel order was submitted before; as it is."},
        201: {"description": "Validated by the ERP and accepted."},
        202: {"model": Order, "description": "Recorded; ERP validation is deferred and retried."},
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
    elif order.status is OrderStatus.RECEIVED:
        response.status_code = 202
    return order


@router.get(
    "/{order_id}",
    summary="One order with its history",
    name="process_get_order",
    responses=problem_responses(404),
    dependencies=READ,
)
async def get_order(service: OrderServiceDep, order_id: Annotated[Identifier, Path()]) -> Order:
    order = await service.get(order_id)
    if order is None:
        raise ProblemError(NOT_FOUND, f"no order {order_id!r}")
    return order
