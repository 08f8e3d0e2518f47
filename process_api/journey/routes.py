"""GET /process/v1/orders/{order_id}/journey: one order's whole journey across requests."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Security

from contracts.common import Identifier
from gateway_infra.auth.dependencies import authenticate
from gateway_infra.openapi import problem_responses
from gateway_infra.problems import NOT_FOUND, ProblemError
from gateway_infra.unit_of_work import Store
from process_api.journey.models import OrderJourney
from process_api.journey.service import OrderJourneys

router = APIRouter(prefix="/v1/orders", tags=["orders"], responses=problem_responses(401, 403, 422))


@router.get(
    "/{order_id}/journey",
    summary="One order's journey: status changes and events, with their correlation",
    description=(
        "Every status change and every event of the order (its returns included), oldest first, "
        "each with the correlation id of the request that caused it; events also carry the "
        "order's origin correlation id (of the request that created the order)."
    ),
    responses=problem_responses(404),
    dependencies=[Security(authenticate, scopes=["process:orders:read"])],
)
async def get_order_journey(
    request: Request, order_id: Annotated[Identifier, Path()]
) -> OrderJourney:
    store: Store = request.app.state.orders.store
    journey = await OrderJourneys(store).get(order_id)
    if journey is None:
        raise ProblemError(NOT_FOUND, f"no order {order_id!r}")
    return journey
