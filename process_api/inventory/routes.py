"""HTTP surface of inventory governance for internal apps (/process/v1/inventory)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Security
from pydantic import BaseModel, ConfigDict, Field
from starlette.convertors import StringConvertor, register_url_convertor

from contracts.common import ChannelCode, JsonTypedModel, Sku, UtcDateTime
from gateway_infra.auth.dependencies import authenticate
from gateway_infra.openapi import problem_responses
from process_api.inventory.service import InventoryService


def get_inventory(request: Request) -> InventoryService:
    service: InventoryService = request.app.state.inventory
    return service


InventoryDep = Annotated[InventoryService, Depends(get_inventory)]
READ = [Security(authenticate, scopes=["process:inventory:read"])]
WRITE = [Security(authenticate, scopes=["process:inventory:write"])]

router = APIRouter(
    prefix="/v1/inventory", tags=["inventory"], responses=problem_responses(401, 403, 422)
)


class InventoryView(BaseModel):
    """One SKU: on-hand as the WMS last counted it, reserved by the gateway, and what each
    channel may sell now."""

    sku: str
    on_hand: int
    reserved: int
    shortfall: int = Field(description="Units reserved beyond what the warehouse holds.")
    on_hand_as_of: datetime | None
    available: dict[str, int] = Field(description="Available-to-sell per channel.")


class StockCount(JsonTypedModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    on_hand: int = Field(ge=0, le=100_000_000)


class StockCounts(BaseModel):
    """On-hand as the warehouse counted it: the WMS owns these numbers, they are never refused."""

    model_config = ConfigDict(extra="forbid")

    as_of: UtcDateTime
    counts: list[StockCount] = Field(min_length=1, max_length=10_000)


class CountsTaken(BaseModel):
    changed: list[str] = Field(description="SKUs whose on-hand changed.")


class Confirmation(BaseModel):
    """A channel confirmed that it shows what was published for these SKUs."""

    model_config = ConfigDict(extra="forbid")

    skus: list[Sku] = Field(min_length=1, max_length=10_000)
    confirmed_at: UtcDateTime


class PublicationStatus(BaseModel):
    channel: str
    sync_lag_seconds: float | None = Field(
        description="Age of the oldest published value the channel has not confirmed."
    )


class _ItemSku(StringConvertor):
    """A SKU as the last segment of /v1/inventory/...: anything but `counts`, which is the counts
    resource of its own (POST only), so that another method on it answers 405 rather than
    reading a SKU named "counts"."""

    regex = "(?!counts$)[^/]+"


register_url_convertor("inventory_sku", _ItemSku())


@router.get(
    "/{sku:inventory_sku}", summary="One SKU's position and availability", dependencies=READ
)
async def inventory(service: InventoryDep, sku: Annotated[Sku, Path()]) -> InventoryView:
    position = await service.position(sku)
    return InventoryView(
        sku=position.sku,
        on_hand=position.on_hand,
        reserved=position.reserved,
        shortfall=position.shortfall,
        on_hand_as_of=position.on_hand_as_of,
        available=await service.availability(sku),
    )


@router.post(
    "/counts",
    summary="Take the warehouse's on-hand counts",
    dependencies=WRITE,
    responses=problem_responses(413, 415),
)
async def take_counts(service: InventoryDep, counts: StockCounts) -> CountsTaken:
    changed = await service.report_on_hand_many(
        {count.sku: count.on_hand for count in counts.counts}, counts.as_of
    )
    return CountsTaken(changed=changed)


@router.post(
    "/publications/{channel}/confirmations",
    summary="Record that a channel shows the published availability",
    dependencies=WRITE,
    status_code=204,
    responses=problem_responses(413, 415),
)
async def confirm_publication(
    service: InventoryDep, channel: Annotated[ChannelCode, Path()], confirmation: Confirmation
) -> None:
    await service.confirm_publication(channel, confirmation.skus, confirmation.confirmed_at)


@router.get(
    "/publications/{channel}",
    summary="Sync lag of a channel's availability",
    dependencies=READ,
)
async def publication_status(
    service: InventoryDep, channel: Annotated[ChannelCode, Path()]
) -> PublicationStatus:
    lag = await service.sync_lag(channel)
    return PublicationStatus(
        channel=channel, sync_lag_seconds=None if lag is None else lag.total_seconds()
    )
