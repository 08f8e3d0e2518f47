"""Partner availability endpoint, built once per API version from its representation.

(No `from __future__ import annotations` here: FastAPI reads the per-version models from the
annotations of functions defined inside the factory.)
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Security

from contracts.common import Sku
from gateway_infra.openapi import problem_responses
from partner_api.edge import Partner, partner
from process_api.inventory.port import MAX_SKUS_PER_QUERY, InventoryPort


def build_inventory_router(representation: Any) -> APIRouter:
    """GET /inventory?sku=... in one version's representation."""
    router = APIRouter(
        prefix="/inventory",
        tags=["inventory"],
        responses=problem_responses(401, 403, 422, 429),
    )

    @router.get(
        "",
        summary="What the calling channel may sell of the given SKUs now",
        description=(
            "Available-to-sell for the channel of the calling client only: on-hand minus "
            "reservations, safety stock and the channel's buffer, then its availability policy "
            "(shared pool, ring-fenced, percentage, cap, floor). A SKU the warehouse holds none "
            "of, or does not know, is 0: list nothing you cannot see here."
        ),
        response_model=representation.response_model,
    )
    async def channel_availability(
        request: Request,
        caller: Annotated[Partner, Security(partner, scopes=["inventory:read"])],
        sku: Annotated[
            list[Sku],
            Query(
                min_length=1,
                max_length=MAX_SKUS_PER_QUERY,
                description=(
                    f"A SKU; repeat the parameter for up to {MAX_SKUS_PER_QUERY} SKUs "
                    "(`?sku=A&sku=B`). Each SKU is answered once, in the order asked."
                ),
            ),
        ],
    ) -> Any:
        port: InventoryPort = request.app.state.inventory
        entries = await port.channel_availability(caller.channel, sku)
        return representation.from_availability(entries)

    return router
