"""Partner price endpoint, built once per API version from its representation.

(No `from __future__ import annotations` here: FastAPI reads the per-version models from the
annotations of functions defined inside the factory.)
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Security

from contracts.common import Sku
from gateway_infra.openapi import problem_responses
from partner_api.edge import Partner, PartnerRoute, partner
from process_api.pricing.models import Instant
from process_api.pricing.port import MAX_SKUS_PER_PRICE_QUERY, PricesPort


def build_prices_router(representation: Any) -> APIRouter:
    """GET /prices?sku=...&at=... in one version's representation."""
    router = APIRouter(
        route_class=PartnerRoute,
        prefix="/prices",
        tags=["prices"],
        responses=problem_responses(401, 403, 422, 429),
    )

    @router.get(
        "",
        summary="The calling channel's prices of the given SKUs at an instant",
        description=(
            "For the channel of the calling client only, from its price book as published: a "
            "promotion's price from its starts_at (inclusive) until its ends_at (exclusive), "
            "else the base price. `at` is an RFC 3339 instant with an offset (any; answered in "
            "UTC; encode '+' as %2B), by default now. A SKU without a published price answers "
            "a null price."
        ),
        response_model=representation.response_model,
    )
    async def channel_prices(
        request: Request,
        caller: Annotated[Partner, Security(partner, scopes=["prices:read"])],
        sku: Annotated[
            list[Sku],
            Query(
                min_length=1,
                max_length=MAX_SKUS_PER_PRICE_QUERY,
                description=(
                    f"A SKU; repeat the parameter for up to {MAX_SKUS_PER_PRICE_QUERY} SKUs "
                    "(`?sku=A&sku=B`). Each SKU is answered once, in the order asked."
                ),
            ),
        ],
        at: Annotated[
            Instant | None,
            Query(description="The instant, e.g. 2026-05-01T12:00:00+02:00; default now."),
        ] = None,
    ) -> Any:
        port: PricesPort = request.app.state.prices
        prices = await port.channel_prices(caller.channel, sku, at)
        return representation.from_prices(prices)

    return router
