"""HTTP surface of price governance for internal apps: price books and their versions
(/process/v1/price-books), publication confirmations (/process/v1/price-publications) and the
live price of a SKU on a channel (/process/v1/prices)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, Security
from pydantic import StringConstraints

from contracts.common import ChannelCode, CurrencyCode, Sku
from contracts.price import ChannelPrice
from gateway_infra.auth.dependencies import authenticate
from gateway_infra.auth.tokens import Principal
from gateway_infra.openapi import problem_responses
from gateway_infra.problems import NOT_FOUND, ProblemError
from process_api.pricing.models import (
    ConfirmationResult,
    EntriesIn,
    EntryBody,
    EntryView,
    Instant,
    NewPriceBook,
    PriceBookView,
    PublicationConfirmation,
    PublicationStatus,
    PublishedVersion,
    ValidationReport,
    VersionSummary,
    VersionView,
)
from process_api.pricing.service import PricingService


def get_pricing(request: Request) -> PricingService:
    service: PricingService = request.app.state.pricing
    return service


PricingDep = Annotated[PricingService, Depends(get_pricing)]
READ_SCOPE = "process:prices:read"
WRITE_SCOPE = "process:prices:write"
READ = [Security(authenticate, scopes=[READ_SCOPE])]
Writer = Annotated[Principal, Security(authenticate, scopes=[WRITE_SCOPE])]
BookId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$"),
    Path(description="Price book id, e.g. pb_3f2a9c0d1e4b5a67."),
]
Version = Annotated[int, Path(ge=1, le=2_000_000_000, description="Version number.")]
SkuPath = Annotated[Sku, Path(description="Stock keeping unit.")]
ChannelPath = Annotated[ChannelCode, Path(description="Channel code, e.g. webshop.")]

router = APIRouter(prefix="/v1", tags=["prices"], responses=problem_responses(401, 403, 422))


def _actor(principal: Principal) -> str:
    return f"client:{principal.client_id}"


@router.post(
    "/price-books",
    summary="Create a channel's price book, with an empty draft as version 1",
    status_code=201,
    responses=problem_responses(409),
)
async def create_price_book(
    service: PricingDep, body: NewPriceBook, principal: Writer
) -> PriceBookView:
    """One book per channel and currency (the channel profile's currency unless named). 422 when
    the channel has no profile (its price rules are unknown); 409 when the book exists."""
    return await service.create_book(body.channel, body.currency, actor=_actor(principal))


@router.get("/price-books", summary="Price books, by channel and currency", dependencies=READ)
async def list_price_books(
    service: PricingDep,
    channel: Annotated[ChannelCode | None, Query(description="Only this channel's.")] = None,
) -> list[PriceBookView]:
    return await service.list_books(channel)


@router.get(
    "/price-books/{book_id}",
    summary="A price book and its versions",
    dependencies=READ,
    responses=problem_responses(404),
)
async def get_price_book(service: PricingDep, book_id: BookId) -> PriceBookView:
    return await service.book(book_id)


@router.get(
    "/price-books/{book_id}/versions",
    summary="The versions of a price book",
    dependencies=READ,
    responses=problem_responses(404),
)
async def list_versions(service: PricingDep, book_id: BookId) -> list[VersionSummary]:
    return await service.versions(book_id)


@router.post(
    "/price-books/{book_id}/versions",
    summary="Open a draft: a copy of the latest published version",
    status_code=201,
    responses=problem_responses(404, 409),
)
async def create_draft(service: PricingDep, book_id: BookId, principal: Writer) -> VersionView:
    """A change of published prices is a new version: this draft, edited, then published.
    409 while the book has a draft already."""
    return await service.new_draft(book_id, actor=_actor(principal))


@router.get(
    "/price-books/{book_id}/versions/{version}",
    summary="One version with its entries",
    dependencies=READ,
    responses=problem_responses(404),
)
async def get_version(service: PricingDep, book_id: BookId, version: Version) -> VersionView:
    return await service.version(book_id, version)


@router.delete(
    "/price-books/{book_id}/versions/{version}",
    summary="Discard a draft",
    status_code=204,
    responses=problem_responses(404, 409),
)
async def discard_draft(
    service: PricingDep, book_id: BookId, version: Version, principal: Writer
) -> Response:
    """409 for a published version: it is never deleted."""
    await service.discard_draft(book_id, version, actor=_actor(principal))
    return Response(status_code=204)


@router.put(
    "/price-books/{book_id}/versions/{version}/entries",
    summary="Replace every entry of a draft",
    responses=problem_responses(404, 409, 503),
)
async def replace_entries(
    service: PricingDep, book_id: BookId, version: Version, body: EntriesIn, principal: Writer
) -> VersionView:
    """Base prices are read from the ERP's item master (a SKU it does not know is refused).
    Every entry is checked against the channel's price rules: 422 `price-rules-violated` lists
    every violation with a pointer into this body, and nothing is stored. 409 for a published
    version; 503 while the ERP cannot be reached."""
    return await service.replace_entries(book_id, version, body.entries, actor=_actor(principal))


@router.put(
    "/price-books/{book_id}/versions/{version}/entries/{sku}",
    summary="Add or replace one entry of a draft",
    responses=problem_responses(404, 409, 503),
)
async def put_entry(
    service: PricingDep,
    book_id: BookId,
    version: Version,
    sku: SkuPath,
    body: EntryBody,
    principal: Writer,
) -> EntryView:
    """As replacing every entry, for one SKU; violation pointers point into this body."""
    return await service.put_entry(book_id, version, sku, body, actor=_actor(principal))


@router.delete(
    "/price-books/{book_id}/versions/{version}/entries/{sku}",
    summary="Take a SKU out of a draft",
    status_code=204,
    responses=problem_responses(404, 409),
)
async def remove_entry(
    service: PricingDep, book_id: BookId, version: Version, sku: SkuPath, principal: Writer
) -> Response:
    if not await service.remove_entry(book_id, version, sku, actor=_actor(principal)):
        raise ProblemError(NOT_FOUND, f"{sku} is not in version {version} of {book_id}")
    return Response(status_code=204)


@router.post(
    "/price-books/{book_id}/versions/{version}/validate",
    summary="Check a version against the channel's price rules now",
    dependencies=READ,
    responses=problem_responses(404, 503),
)
async def validate_version(
    service: PricingDep, book_id: BookId, version: Version
) -> ValidationReport:
    """Every violation publishing the version now would meet (lead times from now, base prices
    read from the ERP now); nothing changes."""
    return await service.validate(book_id, version)


@router.post(
    "/price-books/{book_id}/versions/{version}/publish",
    summary="Publish a draft: immutable from then on, changes scheduled for the channel",
    responses=problem_responses(404, 409, 503),
)
async def publish_version(
    service: PricingDep, book_id: BookId, version: Version, principal: Writer
) -> PublishedVersion:
    """Checks the draft against the channel's price rules (422 `price-rules-violated` with every
    violation, pointers into the version's entries as GET lists them), takes the ERP's base
    prices, and freezes the version. Each change it makes is sent to the channel as a
    `price.changed` event its lead time before it takes effect (at once when that is past); a
    promotion the channel has not confirmed by its start opens a `promotion_unconfirmed`
    exception. 409 when the version is published already."""
    return await service.publish(book_id, version, actor=_actor(principal))


@router.post(
    "/price-publications/{channel}/confirmations",
    summary="Record that a channel shows the price changes sent to it",
    responses=problem_responses(413, 415),
)
async def confirm_price_publication(
    service: PricingDep,
    channel: ChannelPath,
    confirmation: PublicationConfirmation,
    _principal: Writer,
) -> ConfirmationResult:
    """Confirms every change of these SKUs sent to the channel at or before confirmed_at."""
    confirmed = await service.confirm_publication(
        channel, confirmation.skus, confirmation.confirmed_at
    )
    return ConfirmationResult(confirmed=confirmed)


@router.get(
    "/price-publications/{channel}",
    summary="What awaits the channel's confirmation",
    dependencies=READ,
)
async def price_publication_status(service: PricingDep, channel: ChannelPath) -> PublicationStatus:
    return await service.publication_status(channel)


@router.get(
    "/prices/{channel}/{sku}",
    summary="The live price of a SKU on a channel at an instant",
    dependencies=READ,
    responses=problem_responses(404),
)
async def preview_price(
    service: PricingDep,
    channel: ChannelPath,
    sku: SkuPath,
    at: Annotated[
        Instant | None,
        Query(
            description=(
                "The instant, RFC 3339 with an offset (any; answered in UTC), e.g. "
                "2026-05-01T12:00:00+02:00 (encode '+' as %2B). Default: now. A promotion "
                "applies from its starts_at (inclusive) to its ends_at (exclusive)."
            )
        ),
    ] = None,
    currency: Annotated[
        CurrencyCode | None,
        Query(description="The price book's currency; default: the channel profile's."),
    ] = None,
) -> ChannelPrice:
    """The promotion's price inside its window, else the base price, from the version of the
    channel's price book that was published last at or before `at`. 404 when there is none."""
    instant: datetime = at or service.store.clock.now()
    price = await service.price_at(channel, sku, instant, currency=currency)
    if price.price is None:
        raise ProblemError(
            NOT_FOUND, f"no published price of {sku} on {channel} at {instant.isoformat()}"
        )
    return price
