"""Payout reports reconciled against invoices and credit notes: matched orders settle, every
other line becomes an exception; a report is imported once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx

from contracts import CreditNote, CreditNoteLine, Money
from contracts.exceptions import ExceptionRecord
from gateway import Gateway
from gateway_infra.auth.clients import ClientKind
from process_api.exceptions import get_exception, list_exceptions
from process_api.fulfilment import refunded_total
from process_api.fulfilment.repository import record_credit_note
from tests.conftest import register_and_authorize
from tests.factories import line
from tests.process.fulfilment.support import (
    package,
    payout,
    payout_line,
    released_order,
    shipment,
)

RED = "MUG-RED-350"


async def _invoiced_order(
    gateway: Gateway, client: httpx.AsyncClient, channel_order_id: str, channel: str = "webshop"
) -> str:
    """An order of two red mugs (25.80 EUR), shipped and invoiced."""
    order_id = await released_order(
        client, channel_order_id, line("1", RED, quantity=2), channel=channel
    )
    shipped = await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(order_id, package(f"PKG-{channel_order_id}", ("1", RED, 2))),
    )
    assert shipped.status_code == 201, shipped.text
    invoiced = await client.post(f"/process/v1/orders/{order_id}/invoice")
    assert invoiced.json()["order_status"] == "invoiced", invoiced.text
    return order_id


async def _exception(gateway: Gateway, exception_id: str) -> ExceptionRecord:
    found = await gateway.store.read(lambda conn: get_exception(conn, exception_id))
    assert found is not None
    return found


async def _status(client: httpx.AsyncClient, order_id: str) -> str:
    status: str = (await client.get(f"/process/v1/orders/{order_id}")).json()["status"]
    return status


async def test_a_matching_line_settles_its_order(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await _invoiced_order(gateway, client, "SET-1")

    imported = await client.post(
        "/process/v1/settlements",
        json=payout("PO-1", payout_line(order_id=order_id, gross="25.80", fees="2.58")),
    )

    assert imported.status_code == 201, imported.text
    assert imported.headers["location"].endswith("/process/v1/settlements/webshop/PO-1")
    body = imported.json()
    assert (body["matched"], body["mismatched"]) == (1, 0)
    assert body["total_net"] == {"amount": "23.22", "currency": "EUR"}
    [matched] = body["lines"]
    assert matched["outcome"] == "matched"
    assert matched["invoiced"] == {"amount": "25.80", "currency": "EUR"}
    assert matched["refunded"] == {"amount": "0.00", "currency": "EUR"}
    assert matched["exception_id"] is None
    assert await _status(client, order_id) == "settled"


async def test_an_amount_mismatch_opens_an_exception_and_leaves_the_order_invoiced(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await _invoiced_order(gateway, client, "SET-2")

    imported = await client.post(
        "/process/v1/settlements",
        json=payout("PO-2", payout_line(channel_order_id="SET-2", gross="20.00", fees="2.00")),
    )

    assert imported.status_code == 201, imported.text
    [line] = imported.json()["lines"]
    assert (line["outcome"], line["code"], line["order_id"]) == (
        "mismatch",
        "gross_mismatch",
        order_id,
    )
    assert await _status(client, order_id) == "invoiced"
    exception = await _exception(gateway, line["exception_id"])
    assert exception.workflow == "settlement"
    assert exception.code == "gross_mismatch"
    assert exception.subject == f"order/{order_id}"
    assert exception.channel == "webshop"
    assert exception.money_at_risk == Money(amount=Decimal("5.80"), currency="EUR")
    assert exception.object_ids["payout_id"] == "PO-2"


async def test_an_unknown_order_in_a_report_is_an_exception(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    known = await _invoiced_order(gateway, client, "SET-3")

    imported = await client.post(
        "/process/v1/settlements",
        json=payout(
            "PO-3",
            payout_line(channel_order_id="NEVER-SEEN", gross="10.00"),
            payout_line(order_id=known, gross="25.80"),
        ),
    )

    body = imported.json()
    assert [(line["outcome"], line["code"]) for line in body["lines"]] == [
        ("mismatch", "unknown_order"),
        ("matched", None),
    ]
    exception = await _exception(gateway, body["lines"][0]["exception_id"])
    assert exception.code == "unknown_order"
    assert exception.object_ids["channel_order_id"] == "NEVER-SEEN"
    assert exception.money_at_risk == Money(amount=Decimal("10.00"), currency="EUR")
    assert await _status(client, known) == "settled"


async def test_an_order_not_invoiced_or_of_another_channel_is_an_exception(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    shipped_only = await released_order(client, "SET-4")
    other_channel = await _invoiced_order(gateway, client, "SET-5", channel="marketplace")

    imported = await client.post(
        "/process/v1/settlements",
        json=payout(
            "PO-4",
            payout_line(order_id=shipped_only, gross="12.90"),
            payout_line(order_id=other_channel, gross="25.80"),
        ),
    )

    assert [line["code"] for line in imported.json()["lines"]] == [
        "order_not_invoiced",
        "other_channel",
    ]
    assert await _status(client, other_channel) == "invoiced"
    assert await _status(client, shipped_only) == "released"


async def test_refunds_must_equal_what_was_credited(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await _invoiced_order(gateway, client, "SET-6")
    assert await gateway.store.read(lambda conn: refunded_total(conn, order_id)) == 0
    credit = CreditNote(
        credit_note_id="CN-000001",
        invoice_id="INV-000001",
        order_id=order_id,
        lines=[
            CreditNoteLine(
                line_id="1", quantity=1, amount=Money(amount=Decimal("12.90"), currency="EUR")
            )
        ],
        total=Money(amount=Decimal("12.90"), currency="EUR"),
        reason="returned",
    )
    await gateway.store.write(
        lambda uow: record_credit_note(
            uow, credit, reference=f"{order_id}/credit/1", posted_at=datetime.now(UTC)
        )
    )

    unrefunded = await client.post(
        "/process/v1/settlements",
        json=payout("PO-5", payout_line(order_id=order_id, gross="25.80")),
    )
    refunded = await client.post(
        "/process/v1/settlements",
        json=payout("PO-6", payout_line(order_id=order_id, gross="25.80", refunds="12.90")),
    )

    assert unrefunded.json()["lines"][0]["code"] == "refunds_mismatch"
    assert refunded.json()["lines"][0]["outcome"] == "matched"
    assert await _status(client, order_id) == "settled"


async def test_importing_the_same_report_again_changes_nothing(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await _invoiced_order(gateway, client, "SET-7")
    report = payout(
        "PO-7",
        payout_line(order_id=order_id, gross="25.80"),
        payout_line(channel_order_id="GHOST", gross="5.00"),
    )

    first = await client.post("/process/v1/settlements", json=report)
    again = await client.post("/process/v1/settlements", json=report)

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    exceptions = await gateway.store.read(lambda conn: list_exceptions(conn, workflow="settlement"))
    assert [(e.code, e.occurrences) for e in exceptions] == [("unknown_order", 1)]
    read_back = await client.get("/process/v1/settlements/webshop/PO-7")
    assert read_back.status_code == 200
    assert read_back.json() == first.json()
    assert read_back.json()["report"]["lines"][1]["channel_order_id"] == "GHOST"


async def test_another_report_with_the_same_payout_id_is_refused(
    client: httpx.AsyncClient,
) -> None:
    await client.post(
        "/process/v1/settlements", json=payout("PO-8", payout_line(order_id="x", gross="1.00"))
    )

    other = await client.post(
        "/process/v1/settlements", json=payout("PO-8", payout_line(order_id="x", gross="2.00"))
    )
    same_id_other_channel = await client.post(
        "/process/v1/settlements",
        json=payout("PO-8", payout_line(order_id="x", gross="2.00"), channel="marketplace"),
    )

    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"] == "/problems/settlement-conflict"
    assert same_id_other_channel.status_code == 201


async def test_an_unknown_payout_is_not_found_and_an_inconsistent_report_is_invalid(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.get("/process/v1/settlements/webshop/PO-NONE")
    line = payout_line(order_id="x", gross="10.00", fees="1.00")
    line["net"] = {"amount": "10.00", "currency": "EUR"}
    inconsistent = await client.post("/process/v1/settlements", json=payout("PO-9", line))

    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert inconsistent.status_code == 422
    assert inconsistent.headers["content-type"] == "application/problem+json"


async def test_settlements_need_their_own_scopes(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    _, orders_only = await register_and_authorize(
        gateway,
        client,
        kind=ClientKind.INTERNAL,
        scopes=frozenset({"process:orders:read", "process:orders:write"}),
    )

    refused = await client.post(
        "/process/v1/settlements",
        json=payout("PO-10", payout_line(order_id="x", gross="1.00")),
        headers=orders_only,
    )
    unread = await client.get("/process/v1/settlements/webshop/PO-10", headers=orders_only)

    assert refused.status_code == unread.status_code == 403
