"""Partner availability endpoint, built once per API version from its representation.

(No `from __future__ import annotations` here: FastAPI reads the per-version models from the
annotations of functions defined inside the factory.)
"""

from collections import OrderedDict
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, Security
from pydantic import TypeAdapter

from contracts import ChannelAvailability
from contracts.common import Sku
from gateway_infra.openapi import problem_responses
from partner_api.edge import Partner, PartnerRoute, partner
from process_api.inventory.port import MAX_SKUS_PER_QUERY, InventoryPort

RENDERED_ANSWERS = 1024
"""Availability answers whose JSON is kept per representation (least recently used out)."""


class RenderedAnswers:
    """The JSON of recent availability answers in one representation, per answer.

    An answer reused from the read cache (process_api/inventory/read_cache.py) is the same
    entries, the same objects, request after request; building the representation's models
    and serialising them cost more than the rest of the endpoint, so their bytes are kept per
    answer, keyed by the identity of its entries. The kept entries stay referenced here, so no
    other object can take their identity while they are kept. The bytes are those FastAPI writes
    for the response model (`dump_json` by alias).
    """

    def __init__(self, representation: Any, *, max_entries: int = RENDERED_ANSWERS) -> None:
        self.representation = representation
        self.max_entries = max_entries
        self._json: TypeAdapter[Any] = TypeAdapter(representation.response_model)
        self._rendered: OrderedDict[
            tuple[int, ...], tuple[tuple[ChannelAvailability, ...], bytes]
        ] = OrderedDict()

    def body(self, entries: Sequence[ChannelAvailability]) -> bytes:
        key = tuple(map(id, entries))
        kept = self._rendered.get(key)
        if kept is not None:
            self._rendered.move_to_end(key)
            return kept[1]
        body = self._json.dump_json(self.representation.from_availability(entries), by_alias=True)
        if self.max_entries <= 0:
            return body
        self._rendered[key] = (tuple(entries), body)
        if len(self._rendered) > self.max_entries:
            self._rendered.popitem(last=False)
        return body


def build_inventory_router(representation: Any, *, answers_reused: bool = True) -> APIRouter:
    """GET /inventory?sku=... in one version's representation. Without `answers_reused` (the
    read cache is off, so every answer is read anew) no rendered answer is kept."""
    router = APIRouter(
        route_class=PartnerRoute,
        prefix="/inventory",
        tags=["inventory"],
        responses=problem_responses(401, 403, 422, 429),
    )
    rendered = RenderedAnswers(
        representation, max_entries=RENDERED_ANSWERS if answers_reused else 0
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
        return Response(rendered.body(entries), media_type="application/json")

    return router
