"""Partner shipment endpoint, built once per API version from its representation.

(No `from __future__ import annotations` here: FastAPI reads the per-version models from the
annotations of functions defined inside the factory.)
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Security

from contracts.common import Identifier
from gateway_infra.openapi import problem_responses
from gateway_infra.problems import NOT_FOUND, ProblemError
from partner_api.edge import Partner, PartnerRoute, ensure_own, partner
from process_api.fulfilment.port import ShipmentsPort
from process_api.order_to_cash.port import OrdersPort


def build_shipments_router(representation: Any) -> APIRouter:
    """GET /shipments?order_id=... in one version's representation."""
    router = APIRouter(
        route_class=PartnerRoute,
        prefix="/shipments",
        tags=["shipments"],
        responses=problem_responses(401, 403, 404, 422, 429),
    )

    @router.get(
        "",
        summary="The shipments of one order of the calling channel, per package",
        description=(
            "Every package of the order the warehouse has confirmed, with its carrier, tracking "
            "number and the units of each order line it holds, oldest shipment first. An order "
            "that has not shipped yet answers an empty list; packages appear once the warehouse "
            "has confirmed them. An order of another channel answers 404, as an unknown one does."
        ),
        response_model=representation.response_model,
    )
    async def order_shipments(
        request: Request,
        caller: Annotated[Partner, Security(partner, scopes=["orders:read"])],
        order_id: Annotated[
            Identifier,
            Query(description="The gateway's order id, as answered when the order was submitted."),
        ],
    ) -> Any:
        orders: OrdersPort = request.app.state.orders
        order = await orders.get(order_id)
        if order is None:
            raise ProblemError(NOT_FOUND, f"no order {order_id!r}")
        ensure_own(caller, order.channel, "order", order_id)
        shipments: ShipmentsPort = request.app.state.shipments
        return representation.from_shipments(order, await shipments.list_shipments(order_id))

    return router
