"""Publishers on PostgreSQL: a publication of a few SKUs waits only for publishers of the same
SKUs (or for a sweep), so the intakes of orders for other SKUs go on meanwhile, on any replica."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api.inventory import publish_changes
from tests.process.inventory.support import profile, profiles, stock

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

SHOP = profiles(profile("shop"), profile("market"))


@pytest.fixture
def holding(store: Store) -> Iterator[Connection]:
    """A connection whose open transaction published (and so locked) MUG, until the test ends."""
    stock(store, {"MUG": 5, "TEE": 5, **{f"SKU-{n:03}": 1 for n in range(20)}})
    conn = store.database.engine.connect()
    transaction = conn.begin()
    publish_changes(UnitOfWork(conn, store.clock.now(), None), profiles=SHOP, skus=["MUG"])
    try:
        yield conn
    finally:
        transaction.rollback()
        conn.close()


def _publishes_within_a_second(store: Store, skus: Sequence[str] | None) -> bool:
    """Whether a publication of these SKUs (None: a sweep) gets its locks within a second."""
    with store.database.engine.connect() as conn, conn.begin():
        conn.execute(text("SET LOCAL lock_timeout = '1s'"))
        try:
            publish_changes(UnitOfWork(conn, store.clock.now(), None), profiles=SHOP, skus=skus)
        except OperationalError as exc:
            assert "lock timeout" in str(exc)
            return False
        return True


def test_a_publication_of_other_skus_goes_on_while_one_holds_its_skus(
    store: Store, holding: Connection
) -> None:
    assert _publishes_within_a_second(store, ["TEE"])


def test_a_publication_of_the_same_sku_waits_for_the_one_that_holds_it(
    store: Store, holding: Connection
) -> None:
    assert not _publishes_within_a_second(store, ["TEE", "MUG"])


def test_a_sweep_and_a_publication_of_many_skus_wait_for_every_publisher(
    store: Store, holding: Connection
) -> None:
    assert not _publishes_within_a_second(store, None)
    assert not _publishes_within_a_second(store, [f"SKU-{n:03}" for n in range(20)])
