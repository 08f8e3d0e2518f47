"""Property: for any promotion window [start, end) and any instant t, in any offset, the live
price is the promotion's exactly when start <= t < end, else the base price."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.channel import ChannelProfile, PriceRules
from contracts.money import Money
from contracts.price import Promotion
from gateway_infra.clock import ManualClock
from gateway_infra.database import Database
from gateway_infra.unit_of_work import Store
from process_api.channels.service import ChannelProfiles
from process_api.pricing.models import EntryBody, PromotionIn
from process_api.pricing.rules import covering_promotion
from process_api.pricing.service import PricingService
from system_api.erp.embedded import EmbeddedErp, upsert_products
from tests.factories import product

MICROSECOND = timedelta(microseconds=1)
BASE = Money(amount=Decimal("12.90"), currency="EUR")
SALE = Money(amount=Decimal("9.90"), currency="EUR")

zones = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
lengths = st.timedeltas(min_value=MICROSECOND, max_value=timedelta(days=170))


@st.composite
def instant_near(draw: st.DrawFn, start: datetime, length: timedelta) -> datetime:
    """An instant around the window, often exactly on or next to one of its edges."""
    edge = draw(
        st.sampled_from(
            [None, timedelta(0), -MICROSECOND, length, length - MICROSECOND, length + MICROSECOND]
        )
    )
    if edge is not None:
        return start + edge
    return start + draw(st.timedeltas(min_value=-length - timedelta(days=2), max_value=2 * length))


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(
    start=st.datetimes(
        min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC)
    ),
    length=lengths,
    data=st.data(),
    zone=zones,
)
def test_the_promotion_holds_exactly_inside_its_window(
    start: datetime, length: timedelta, data: st.DataObject, zone: timezone
) -> None:
    sale = Promotion(promotion_id="P", price=SALE, starts_at=start, ends_at=start + length)
    t = data.draw(instant_near(start, length))

    found = covering_promotion([sale], t.astimezone(zone))

    assert (found == sale) == (start <= t < start + length)


def test_published_and_previewed_prices_follow_the_window_on_the_database(
    database_url: str, clock: ManualClock
) -> None:
    """The same property through storage, publication and preview (SQLite and PostgreSQL)."""
    database = Database(database_url)
    store = Store(database, clock)
    channels = ChannelProfiles(store)
    channels.seed_sync(
        [
            ChannelProfile(
                channel="webshop",
                name="Webshop",
                currency="EUR",
                price_rules=PriceRules(
                    publication_lead_time=timedelta(hours=1),
                    max_promotion_duration=timedelta(days=180),
                ),
            )
        ],
        actor="test",
    )
    store.write_sync(lambda uow: upsert_products(uow, [product("MUG-RED-350", "12.90")]))
    service = PricingService(store, EmbeddedErp(store), channels)
    now = clock.now()

    with asyncio.Runner() as runner:
        book_id = runner.run(service.create_book("webshop", None, actor="test")).book_id
        draft = [1]

        @settings(
            max_examples=40,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(
            lead=st.timedeltas(min_value=timedelta(hours=1), max_value=timedelta(days=30)),
            length=lengths,
            data=st.data(),
            zone=zones,
        )
        def run(lead: timedelta, length: timedelta, data: st.DataObject, zone: timezone) -> None:
            start = now + lead
            version = draft[0]
            offer = PromotionIn(
                promotion_id=f"P{version}", price=SALE, starts_at=start, ends_at=start + length
            )
            runner.run(
                service.put_entry(
                    book_id, version, "MUG-RED-350", EntryBody(promotions=[offer]), actor="test"
                )
            )
            runner.run(service.publish(book_id, version, actor="test"))
            draft[0] = runner.run(service.new_draft(book_id, actor="test")).version
            t = max(data.draw(instant_near(start, length)), now)

            live = runner.run(service.price_at("webshop", "MUG-RED-350", t.astimezone(zone)))

            inside = start <= t < start + length
            assert live.price == (SALE if inside else BASE)
            assert (live.promotion is not None) == inside
            assert live.version == version

        try:
            run()
        finally:
            database.dispose()
