"""Partner order endpoints, built once per API version from its representation.

(No `from __future__ import annotations` here: FastAPI reads the per-version models from the
annotations of functions defined inside the factory.)
"""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, Security
from fastapi.responses import JSONResponse
from pydantic import BaseModel, create_model

from contracts import OrderStatus
from contracts.common import Identifier, UtcDateTime
from gateway_infra.openapi import operation_link, problem_responses
from gateway_infra.problems import NOT_FOUND, ProblemError
from partner_api.edge import IdempotentCall, Partner, PartnerRoute, ensure_own, idempotent, partner
from process_api.order_to_cash.port import OrdersPort, Submitted
from process_api.problems import ORDER_REJECTED

ACTOR_PREFIX = "partner:"


def build_orders_router(representation: Any) -> APIRouter:
    """POST /orders and GET /orders/{order_id} in one version's representation."""
    request_model: type[BaseModel] = representation.request_model
    response_model: type[BaseModel] = representation.response_model
    router = APIRouter(
        route_class=PartnerRoute,
        prefix="/orders",
        tags=["orders"],
        responses=problem_responses(400, 401, 403, 422, 429),
    )

    # Where a client goes from an order it holds: read it, cancel it.
    read_link = operation_link(
        "/orders/{order_id}", "get", "Read this order.", order_id="$response.body#/order_id"
    )
    cancel_link = operation_link(
        "/orders/{order_id}/cancel",
        "post",
        "Cancel this order while it has not shipped.",
        order_id="$response.body#/order_id",
    )
    order_links = {"GetOrder": read_link, "CancelOrder": cancel_link}

    def orders_of(request: Request) -> OrdersPort:
        port: OrdersPort = request.app.state.orders
        return port

    @router.post(
        "",
        summary="Submit an order of the calling channel",
        status_code=201,
        response_model=response_model,
        responses={
            200: {
                "model": response_model,
                "description": "Submitted before; as it is now.",
                "links": order_links,
            },
            201: {"description": "Validated by the ERP and accepted.", "links": order_links},
            202: {
                "model": response_model,
                "description": "Recorded; validation is deferred.",
                "links": order_links,
            },
            **problem_responses(409, 413, 415),
        },
    )
    async def submit_order(
        request: Request,
        body: request_model,  # type: ignore[valid-type]
        call: Annotated[IdempotentCall, Security(idempotent, scopes=["orders:write"])],
    ) -> Response:
        def respond(result: Submitted) -> Response:
            order = result.order
            if result.created and order.status is OrderStatus.REJECTED:
                raise ProblemError(
                    ORDER_REJECTED,
                    f"{len(order.rejections)} line(s) rejected",
                    order_id=order.order_id,
                    rejections=[r.model_dump(mode="json") for r in order.rejections],
                )
            status = 201
            if not result.created:
                status = 200
            elif order.status in (OrderStatus.RECEIVED, OrderStatus.RESERVED):
                status = 202
            location = f"{str(request.url).split('?')[0].rstrip('/')}/{order.order_id}"
            return JSONResponse(
                representation.from_order(order).model_dump(mode="json"),
                status_code=status,
                headers={"Location": location},
            )

        async def produce() -> Response:
            submission = representation.to_submission(body, channel=call.caller.channel)
            # The answer is stored for replay in the transaction that settles the order.
            result = await orders_of(request).submit(
                submission,
                actor=ACTOR_PREFIX + call.caller.client_id,
                answer=call.idempotency.answering(respond),
            )
            answered = call.idempotency.answered
            return answered if answered is not None else respond(result)

        return await call.idempotency.run(produce)

    page_model = create_model(
        f"{response_model.__name__}List",
        items=(list[response_model], ...),  # type: ignore[valid-type]
        next_cursor=(str | None, None),
        __doc__="A page of the channel's orders, oldest change first; pass next_cursor on.",
    )

    @router.get(
        "",
        summary="The calling channel's orders by last change",
        response_model=page_model,
    )
    async def list_orders(
        request: Request,
        caller: Annotated[Partner, Security(partner, scopes=["orders:read"])],
        status: Annotated[list[OrderStatus] | None, Query()] = None,
        updated_after: Annotated[UtcDateTime | None, Query()] = None,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> Any:
        page = await orders_of(request).list(
            channel=caller.channel,
            statuses=status or (),
            updated_after=updated_after,
            cursor=cursor,
            limit=limit,
        )
        return page_model(
            items=[representation.from_order(order) for order in page.items],
            next_cursor=page.next_cursor,
        )

    @router.post(
        "/{order_id}/cancel",
        summary="Cancel an order of the calling channel that has not shipped",
        response_model=response_model,
        responses=problem_responses(404, 409, 413, 415),
    )
    async def cancel_order(
        request: Request,
        order_id: Annotated[Identifier, Path()],
        call: Annotated[IdempotentCall, Security(idempotent, scopes=["orders:write"])],
    ) -> Response:
        async def produce() -> Response:
            port = orders_of(request)
            order = await port.get(order_id)
            if order is None:
                raise ProblemError(NOT_FOUND, f"no order {order_id!r}")
            ensure_own(call.caller, order.channel, "order", order_id)
            cancelled = await port.cancel(order_id, actor=ACTOR_PREFIX + call.caller.client_id)
            return JSONResponse(representation.from_order(cancelled).model_dump(mode="json"))

        return await call.idempotency.run(produce)

    @router.get(
        "/{order_id}",
        summary="One order of the calling channel",
        response_model=response_model,
        responses={200: {"links": {"CancelOrder": cancel_link}}, **problem_responses(404)},
    )
    async def get_order(
        request: Request,
        order_id: Annotated[Identifier, Path()],
        caller: Annotated[Partner, Security(partner, scopes=["orders:read"])],
    ) -> Any:
        order = await orders_of(request).get(order_id)
        if order is None:
            raise ProblemError(NOT_FOUND, f"no order {order_id!r}")
        ensure_own(caller, order.channel, "order", order_id)
        return representation.from_order(order)

    return router
