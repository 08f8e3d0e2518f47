"""The WMS system API over HTTP: routes, scopes and problem answers, and the HTTP client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from contracts.returns import Disposition, InspectionGrade
from contracts.shipment import Package, ShipmentLine
from contracts.wms import (
    AdjustmentReason,
    Fulfilment,
    FulfilmentLine,
    FulfilmentRequest,
    FulfilmentState,
    InspectionLine,
    InspectionRequest,
    ReturnReceiptLineIn,
    ReturnReceiptRequest,
    ShipmentConfirmation,
    StockAdjustmentRequest,
    StockLevel,
    Warehouse,
)
from gateway import Gateway, build_app
from gateway_infra.auth.client_token import ClientCredentials
from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import SYSTEM_SCOPES
from system_api.errors import (
    BackendRejected,
    BackendUnavailable,
    DocumentNotFound,
    InvalidDocumentState,
    PackageAfterCompletion,
    QuantityExceeded,
)
from system_api.wms.embedded import ensure_warehouse
from system_api.wms.http_client import HttpWmsClient
from tests.conftest import UvicornThread, register_and_authorize

WMS = "/system/wms/v1"
MUG, TEE = "MUG-RED-350", "TEE-ORG-M"
PROBLEM = "application/problem+json"


@pytest.fixture
def warehouses(gateway: Gateway) -> None:
    def seed(uow: Any) -> None:
        ensure_warehouse(uow, "WH-1", "Main warehouse")
        ensure_warehouse(uow, "WH-2", "Overflow warehouse")

    gateway.store.write_sync(seed)


def receipt(reference: str, delta: int, sku: str = MUG) -> dict[str, Any]:
    return {
        "sku": sku,
        "warehouse": "WH-1",
        "reason": "receipt",
        "reference": reference,
        "delta": delta,
    }


def fulfilment_payload(order_reference: str = "ORD-1") -> dict[str, Any]:
    return {
        "order_reference": order_reference,
        "warehouse": "WH-1",
        "lines": [
            {"line_id": "1", "sku": MUG, "quantity": 3},
            {"line_id": "2", "sku": TEE, "quantity": 1},
        ],
    }


def package_payload(reference: str, *lines: tuple[str, str, int]) -> dict[str, Any]:
    return {
        "package_reference": reference,
        "carrier": "dhl",
        "tracking_number": f"TRK-{reference}",
        "lines": [{"line_id": i, "sku": sku, "quantity": q} for i, sku, q in lines],
    }


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


# ---------------------------------------------------------------- routes


@pytest.mark.usefixtures("warehouses")
async def test_stock_is_adjusted_once_per_reference_and_read_back(
    client: httpx.AsyncClient,
) -> None:
    first = await client.post(f"{WMS}/stock/adjustments", json=receipt("GR-1", 5))
    again = await client.post(f"{WMS}/stock/adjustments", json=receipt("GR-1", 5))
    await client.post(f"{WMS}/stock/adjustments", json=receipt("GR-2", 2, sku=TEE))

    assert first.status_code == 201, first.text
    assert again.status_code == 200
    assert again.json() == first.json()
    assert first.json()["on_hand"] == 5
    warehouses = await client.get(f"{WMS}/warehouses")
    assert warehouses.json() == [
        {"code": "WH-1", "name": "Main warehouse"},
        {"code": "WH-2", "name": "Overflow warehouse"},
    ]
    everything = await client.get(f"{WMS}/stock")
    assert everything.json() == [
        {"sku": MUG, "warehouse": "WH-1", "on_hand": 5},
        {"sku": TEE, "warehouse": "WH-1", "on_hand": 2},
    ]
    one = await client.get(f"{WMS}/stock", params={"sku": TEE, "warehouse": "WH-1"})
    assert one.json() == [{"sku": TEE, "warehouse": "WH-1", "on_hand": 2}]
    assert (await client.get(f"{WMS}/stock", params={"warehouse": "WH-2"})).json() == []


@pytest.mark.usefixtures("warehouses")
async def test_refused_adjustments_are_answered_as_problems(client: httpx.AsyncClient) -> None:
    damage = {**receipt("DMG-1", -1), "reason": "damage"}
    unknown = {**receipt("GR-1", 1), "warehouse": "NO-SUCH"}
    negative_receipt = receipt("GR-2", -1)

    below_zero = await client.post(f"{WMS}/stock/adjustments", json=damage)
    not_found = await client.post(f"{WMS}/stock/adjustments", json=unknown)
    invalid = await client.post(f"{WMS}/stock/adjustments", json=negative_receipt)
    bad_query = await client.get(f"{WMS}/stock", params={"sku": "not a sku!"})

    assert "below zero" in assert_problem(below_zero, 409, "invalid-document-state")["detail"]
    assert "NO-SUCH" in assert_problem(not_found, 404, "not-found")["detail"]
    assert_problem(invalid, 422, "validation-error")
    assert_problem(bad_query, 422, "validation-error")


@pytest.mark.usefixtures("warehouses")
async def test_a_fulfilment_is_released_shipped_corrected_and_then_final(
    client: httpx.AsyncClient,
) -> None:
    await client.post(f"{WMS}/stock/adjustments", json=receipt("GR-1", 10))
    await client.post(f"{WMS}/stock/adjustments", json=receipt("GR-2", 10, sku=TEE))

    created = await client.post(f"{WMS}/fulfilments", json=fulfilment_payload())
    again = await client.post(f"{WMS}/fulfilments", json=fulfilment_payload())
    assert created.status_code == 201, created.text
    assert again.status_code == 200
    fulfilment_id = created.json()["fulfilment_id"]
    assert created.headers["location"].endswith(f"{WMS}/fulfilments/{fulfilment_id}")
    read = await client.get(f"{WMS}/fulfilments/{fulfilment_id}")
    assert read.json() == created.json() == again.json()
    shipments = f"{WMS}/fulfilments/{fulfilment_id}/shipments"

    partial = await client.post(
        shipments, json={"packages": [package_payload("P1", ("1", MUG, 2))]}
    )
    corrected = await client.post(
        shipments, json={"packages": [package_payload("P1", ("1", MUG, 1))]}
    )
    too_many = await client.post(
        shipments, json={"packages": [package_payload("P2", ("1", MUG, 3))]}
    )
    wrong_sku = await client.post(
        shipments, json={"packages": [package_payload("P2", ("1", TEE, 1))]}
    )
    done = await client.post(
        shipments,
        json={"packages": [package_payload("P2", ("1", MUG, 2), ("2", TEE, 1))], "complete": True},
    )
    late = await client.post(shipments, json={"packages": [package_payload("P2", ("1", MUG, 2))]})

    assert partial.status_code == 200, partial.text
    assert partial.json()["state"] == "partially_shipped"
    assert [line["shipped_quantity"] for line in corrected.json()["lines"]] == [1, 0]
    assert_problem(too_many, 409, "quantity-exceeded")
    assert_problem(wrong_sku, 409, "invalid-document-state")
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "shipped"
    assert [p["package_reference"] for p in done.json()["packages"]] == ["P1", "P2"]
    problem = assert_problem(late, 409, "package-after-completion")
    assert (problem["fulfilment_id"], problem["package_reference"]) == (fulfilment_id, "P2")
    stock = (await client.get(f"{WMS}/stock")).json()
    assert [level["on_hand"] for level in stock] == [7, 9]


@pytest.mark.usefixtures("warehouses")
async def test_unknown_fulfilments_are_not_found(client: httpx.AsyncClient) -> None:
    read = await client.get(f"{WMS}/fulfilments/FUL-000404")
    ship = await client.post(
        f"{WMS}/fulfilments/FUL-000404/shipments",
        json={"packages": [package_payload("P1", ("1", MUG, 1))]},
    )
    unknown_warehouse = await client.post(
        f"{WMS}/fulfilments", json={**fulfilment_payload(), "warehouse": "NO-SUCH"}
    )

    assert_problem(read, 404, "not-found")
    assert_problem(ship, 404, "not-found")
    assert_problem(unknown_warehouse, 404, "not-found")


@pytest.mark.usefixtures("warehouses")
async def test_returns_are_received_then_inspected_once(client: httpx.AsyncClient) -> None:
    rma = "RMA/2026/1"  # references may hold a slash
    receipt_payload = {
        "rma_reference": rma,
        "order_reference": "ORD-1",
        "warehouse": "WH-1",
        "lines": [{"line_id": "1", "sku": MUG, "quantity": 2}],
    }
    inspection = {
        "lines": [
            {
                "line_id": "1",
                "sku": MUG,
                "grade": "resellable",
                "disposition": "restock",
                "quantity": 1,
            },
            {
                "line_id": "1",
                "sku": MUG,
                "grade": "damaged",
                "disposition": "scrap",
                "quantity": 1,
            },
        ]
    }
    inspect_url = f"{WMS}/returns/{rma.replace('/', '%2F')}/inspection"

    received = await client.post(f"{WMS}/returns/receipts", json=receipt_payload)
    received_again = await client.post(f"{WMS}/returns/receipts", json=receipt_payload)
    not_sellable_yet = (await client.get(f"{WMS}/stock")).json()
    inspected = await client.post(inspect_url, json=inspection)
    inspected_again = await client.post(inspect_url, json=inspection)
    different = await client.post(inspect_url, json={"lines": inspection["lines"][:1]})
    unknown = await client.post(f"{WMS}/returns/RMA-404/inspection", json=inspection)

    assert (received.status_code, received_again.status_code) == (201, 200)
    assert received.json()["receipt_id"] == "RCV-000001"
    assert not_sellable_yet == []
    assert (inspected.status_code, inspected_again.status_code) == (201, 200)
    assert inspected.json()["rma_reference"] == rma
    assert inspected_again.json() == inspected.json()
    assert_problem(different, 409, "invalid-document-state")
    assert_problem(unknown, 404, "not-found")
    assert (await client.get(f"{WMS}/stock")).json() == [
        {"sku": MUG, "warehouse": "WH-1", "on_hand": 1}
    ]


@pytest.mark.usefixtures("warehouses")
async def test_inspecting_more_than_received_is_a_quantity_problem(
    client: httpx.AsyncClient,
) -> None:
    await client.post(
        f"{WMS}/returns/receipts",
        json={
            "rma_reference": "RMA-1",
            "order_reference": "ORD-1",
            "warehouse": "WH-1",
            "lines": [{"line_id": "1", "sku": MUG, "quantity": 1}],
        },
    )
    line = {"line_id": "1", "sku": MUG, "grade": "resellable", "disposition": "restock"}

    response = await client.post(
        f"{WMS}/returns/RMA-1/inspection", json={"lines": [{**line, "quantity": 2}]}
    )

    assert_problem(response, 409, "quantity-exceeded")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/warehouses"),
        ("GET", "/stock"),
        ("GET", "/fulfilments/FUL-000001"),
        ("POST", "/stock/adjustments"),
        ("POST", "/fulfilments"),
        ("POST", "/fulfilments/FUL-000001/shipments"),
        ("POST", "/returns/receipts"),
        ("POST", "/returns/RMA-1/inspection"),
    ],
)
async def test_every_route_needs_a_token(
    anonymous: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await anonymous.request(method, f"{WMS}{path}", json={})

    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_read_only_client_may_read_but_not_write(
    gateway: Gateway, anonymous: httpx.AsyncClient
) -> None:
    _, headers = await register_and_authorize(
        gateway, anonymous, kind=ClientKind.INTERNAL, scopes=frozenset({"system:wms:read"})
    )

    read = await anonymous.get(f"{WMS}/stock", headers=headers)
    write = await anonymous.post(
        f"{WMS}/stock/adjustments", json=receipt("GR-1", 1), headers=headers
    )

    assert read.status_code == 200
    problem = assert_problem(write, 403, "forbidden")
    assert problem["required_scopes"] == ["system:wms:write"]
    assert (await anonymous.get(f"{WMS}/stock", headers=headers)).json() == []


async def test_openapi_documents_every_problem_answer(anonymous: httpx.AsyncClient) -> None:
    document = (await anonymous.get("/system/openapi.json")).json()
    paths = {p: item for p, item in document["paths"].items() if p.startswith("/wms/v1")}
    expected = {
        ("/wms/v1/warehouses", "get"): {"401", "403", "422", "503"},
        ("/wms/v1/stock", "get"): {"401", "403", "422", "503"},
        ("/wms/v1/stock/adjustments", "post"): {"401", "403", "404", "409", "422", "503"},
        ("/wms/v1/fulfilments", "post"): {"401", "403", "404", "422", "503"},
        ("/wms/v1/fulfilments/{fulfilment_id}", "get"): {"401", "403", "404", "422", "503"},
        ("/wms/v1/fulfilments/{fulfilment_id}/shipments", "post"): {
            "401",
            "403",
            "404",
            "409",
            "422",
            "503",
        },
        ("/wms/v1/returns/receipts", "post"): {"401", "403", "404", "422", "503"},
        ("/wms/v1/returns/{rma_reference}/inspection", "post"): {
            "401",
            "403",
            "404",
            "409",
            "422",
            "503",
        },
    }

    assert {(p, m) for p, item in paths.items() for m in item} == set(expected)
    for (path, method), statuses in expected.items():
        responses = paths[path][method]["responses"]
        for status in statuses:
            assert set(responses[status]["content"]) == {PROBLEM}, (path, method, status)
        scopes = paths[path][method]["security"][0]["oauth2"]
        assert scopes == ["system:wms:read" if method == "get" else "system:wms:write"]


# ---------------------------------------------------------------- the HTTP client, for real


@pytest.fixture
async def http_wms(gateway: Gateway) -> AsyncIterator[HttpWmsClient]:
    """HttpWmsClient calling the gateway's system API on a real uvicorn, with a real token."""
    server = UvicornThread(build_app(gateway, run_background=False)).start()
    record, secret = gateway.clients.add(
        name="wms-client", kind=ClientKind.INTERNAL, scopes=SYSTEM_SCOPES
    )
    client = HttpWmsClient(
        f"{server.url}/system",
        credentials=ClientCredentials(
            token_url=f"{server.url}/oauth/token",
            client_id=record.client_id,
            client_secret=secret,
            scope=" ".join(sorted(SYSTEM_SCOPES)),
        ),
    )
    yield client
    await client.aclose()
    server.stop()


def _inspection(*lines: tuple[int, Disposition, InspectionGrade]) -> InspectionRequest:
    return InspectionRequest(
        lines=[
            InspectionLine(line_id="1", sku=MUG, quantity=q, disposition=d, grade=g)
            for q, d, g in lines
        ]
    )


@pytest.mark.usefixtures("warehouses")
async def test_the_http_client_runs_a_whole_warehouse_flow_against_a_real_server(
    http_wms: HttpWmsClient,
) -> None:
    assert http_wms.name == "system_api_http"
    assert await http_wms.list_warehouses() == [
        Warehouse(code="WH-1", name="Main warehouse"),
        Warehouse(code="WH-2", name="Overflow warehouse"),
    ]
    request = StockAdjustmentRequest(
        sku=MUG, warehouse="WH-1", reason=AdjustmentReason.RECEIPT, reference="GR-1", delta=10
    )
    adjusted, created = await http_wms.adjust_stock_outcome(request)
    assert (adjusted.on_hand, created) == (10, True)
    assert await http_wms.adjust_stock(request) == adjusted
    assert await http_wms.stock_levels(sku=MUG, warehouse="WH-1") == [
        StockLevel(sku=MUG, warehouse="WH-1", on_hand=10)
    ]
    with pytest.raises(InvalidDocumentState, match="below zero"):
        await http_wms.adjust_stock(
            StockAdjustmentRequest(
                sku=MUG, warehouse="WH-1", reason=AdjustmentReason.DAMAGE, reference="D", delta=-11
            )
        )
    with pytest.raises(DocumentNotFound, match="no warehouse 'NOPE'"):
        await http_wms.adjust_stock(request.model_copy(update={"warehouse": "NOPE"}))

    fulfilment = await http_wms.request_fulfilment(
        FulfilmentRequest(
            order_reference="ORD-1",
            warehouse="WH-1",
            lines=[FulfilmentLine(line_id="1", sku=MUG, quantity=3)],
        )
    )
    fulfilment_id = fulfilment.fulfilment_id
    assert await http_wms.get_fulfilment(fulfilment_id) == fulfilment
    assert await http_wms.get_fulfilment("FUL-999999") is None

    def confirmation(quantity: int, *, complete: bool = False) -> ShipmentConfirmation:
        package = Package(
            package_reference="P1",
            carrier="dhl",
            tracking_number="T1",
            lines=[ShipmentLine(line_id="1", sku=MUG, quantity=quantity)],
        )
        return ShipmentConfirmation(packages=[package], complete=complete)

    partial = await http_wms.confirm_shipment(fulfilment_id, confirmation(1))
    assert partial.state is FulfilmentState.PARTIALLY_SHIPPED
    with pytest.raises(QuantityExceeded, match="3 were ordered"):
        await http_wms.confirm_shipment(fulfilment_id, confirmation(4))
    done = await http_wms.confirm_shipment(fulfilment_id, confirmation(2, complete=True))
    assert done.state is FulfilmentState.SHIPPED
    assert [line.shipped_quantity for line in done.lines] == [2]
    with pytest.raises(PackageAfterCompletion) as refused:
        await http_wms.confirm_shipment(fulfilment_id, confirmation(2))
    assert refused.value.extensions == {"fulfilment_id": fulfilment_id, "package_reference": "P1"}
    with pytest.raises(DocumentNotFound):
        await http_wms.confirm_shipment("FUL-999999", confirmation(1))

    rma = "RMA/1"
    receipt, received_now = await http_wms.receive_return_outcome(
        ReturnReceiptRequest(
            rma_reference=rma,
            order_reference="ORD-1",
            warehouse="WH-1",
            lines=[ReturnReceiptLineIn(line_id="1", sku=MUG, quantity=2)],
        )
    )
    assert (receipt.receipt_id, received_now) == ("RCV-000001", True)
    graded = _inspection(
        (1, Disposition.RESTOCK, InspectionGrade.RESELLABLE),
        (1, Disposition.QUARANTINE, InspectionGrade.DAMAGED),
    )
    record = await http_wms.record_inspection(rma, graded)
    assert await http_wms.record_inspection_outcome(rma, graded) == (record, False)
    with pytest.raises(InvalidDocumentState, match="already inspected"):
        await http_wms.record_inspection(
            rma, _inspection((2, Disposition.RESTOCK, InspectionGrade.RESELLABLE))
        )
    with pytest.raises(DocumentNotFound, match="RMA-404"):
        await http_wms.record_inspection("RMA-404", graded)
    # 10 received, P1 corrected to 2 units and completed, 1 unit restocked from the return
    assert await http_wms.stock_levels() == [StockLevel(sku=MUG, warehouse="WH-1", on_hand=9)]


# ---------------------------------------------------------------- the HTTP client's edge cases

Handler = Callable[[httpx.Request], httpx.Response]


def mocked(handler: Handler, attempts: int = 3) -> HttpWmsClient:
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(handler), base_url="http://wms.test/system/wms/v1"
    )
    return HttpWmsClient("http://wms.test/system", client=client, attempts=attempts)


COMPLETED_AT = datetime(2026, 1, 1, 12, tzinfo=UTC)


def _fulfilment(state: FulfilmentState, *packages: Package) -> Fulfilment:
    return Fulfilment(
        fulfilment_id="FUL-000001",
        order_reference="ORD-1",
        warehouse="WH-1",
        state=state,
        lines=[FulfilmentLine(line_id="1", sku=MUG, quantity=2, shipped_quantity=2)],
        packages=list(packages),
        completed_at=COMPLETED_AT if state is FulfilmentState.SHIPPED else None,
    )


PACKAGE = Package(
    package_reference="P1",
    carrier="dhl",
    tracking_number="T1",
    lines=[ShipmentLine(line_id="1", sku=MUG, quantity=2)],
)
AFTER_COMPLETION = {
    "type": "/problems/package-after-completion",
    "title": "The fulfilment is complete: its packages are final",
    "status": 409,
    "code": "package-after-completion",
    "detail": "fulfilment FUL-000001 is complete; package 'P1' is final",
    "fulfilment_id": "FUL-000001",
    "package_reference": "P1",
}


def problem(status: int, body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body), headers={"content-type": PROBLEM})


async def test_writes_idempotent_by_reference_are_retried_after_a_gateway_error() -> None:
    calls: list[str] = []
    adjusted = {
        "sku": MUG,
        "warehouse": "WH-1",
        "reason": "receipt",
        "reference": "GR-1",
        "delta": 1,
        "on_hand": 1,
        "at": "2026-01-01T12:00:00Z",
    }

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) == 1:
            raise httpx.ReadTimeout("lost", request=request)
        if len(calls) == 2:
            return httpx.Response(503, text="busy")
        return httpx.Response(200, json=adjusted)

    wms = mocked(handler)
    result, created = await wms.adjust_stock_outcome(
        StockAdjustmentRequest(
            sku=MUG, warehouse="WH-1", reason=AdjustmentReason.RECEIPT, reference="GR-1", delta=1
        )
    )

    assert calls == ["POST", "POST", "POST"]
    assert (result.on_hand, created) == (1, False)


async def test_a_completing_confirmation_whose_answer_was_lost_is_not_reported_as_refused() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if request.method == "GET":
            return httpx.Response(
                200, content=_fulfilment(FulfilmentState.SHIPPED, PACKAGE).model_dump_json()
            )
        if calls.count("POST") == 1:
            return httpx.Response(504, text="timeout")  # committed, but the answer was lost
        return problem(409, AFTER_COMPLETION)

    wms = mocked(handler)
    confirmed = await wms.confirm_shipment(
        "FUL-000001", ShipmentConfirmation(packages=[PACKAGE], complete=True)
    )

    assert calls == ["POST", "POST", "GET"]
    assert confirmed.state is FulfilmentState.SHIPPED


async def test_a_package_after_completion_stays_refused_when_it_differs_or_was_not_retried() -> (
    None
):
    posts: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(
                200, content=_fulfilment(FulfilmentState.SHIPPED, PACKAGE).model_dump_json()
            )
        posts.append(1)
        if len(posts) == 1:
            return httpx.Response(502, text="bad gateway")
        return problem(409, AFTER_COMPLETION)

    other = PACKAGE.model_copy(update={"tracking_number": "T2"})
    wms = mocked(handler)
    with pytest.raises(PackageAfterCompletion) as refused:
        await wms.confirm_shipment("FUL-000001", ShipmentConfirmation(packages=[other]))
    with pytest.raises(PackageAfterCompletion):  # first attempt answered: a genuine refusal
        await wms.confirm_shipment("FUL-000001", ShipmentConfirmation(packages=[PACKAGE]))

    assert str(refused.value) == AFTER_COMPLETION["detail"]


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (404, {"code": "not-found", "detail": "no fulfilment 'X'"}, DocumentNotFound, "'X'"),
        (409, {"code": "invalid-document-state", "detail": "d1"}, InvalidDocumentState, "d1"),
        (409, {"code": "quantity-exceeded", "detail": "d2"}, QuantityExceeded, "d2"),
        (
            422,
            {"code": "backend-rejected", "backend": "wms", "backend_message": "no"},
            BackendRejected,
            "refused",
        ),
        (422, {"code": "validation-error", "detail": "bad"}, BackendRejected, "refused"),
        (409, {"code": "conflict", "detail": "?"}, BackendUnavailable, "unexpected HTTP 409"),
        (500, {"code": "internal-error"}, BackendUnavailable, "unexpected HTTP 500"),
    ],
)
async def test_problem_answers_become_the_system_api_errors(
    status: int, body: dict[str, Any], error: type[Exception], message: str
) -> None:
    wms = mocked(lambda request: problem(status, body))

    with pytest.raises(error, match=message) as raised:
        await wms.receive_return(
            ReturnReceiptRequest(
                rma_reference="RMA-1",
                order_reference="ORD-1",
                warehouse="WH-1",
                lines=[ReturnReceiptLineIn(line_id="1", sku=MUG, quantity=1)],
            )
        )
    if status == 404:
        assert str(raised.value) == "no fulfilment 'X'"


async def test_an_unreachable_system_api_is_unavailable_after_the_attempts() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(BackendUnavailable, match="ConnectError"):
        await mocked(handler, attempts=2).list_warehouses()
    assert calls == ["/system/wms/v1/warehouses"] * 2
