"""WmsPort over Tryton 8.x stock: warehouses, on-hand, adjustments, customer shipments,
packages and customer returns by JSON-RPC.

On-hand ("sellable") is the quantity in the warehouse's storage location (children included);
goods in the input zone (received returns), the output zone, the quarantine location or a
waste location are not sellable.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from contracts.returns import Disposition
from contracts.shipment import Package, ShipmentLine
from contracts.wms import (
    AdjustmentReason,
    Fulfilment,
    FulfilmentLine,
    FulfilmentRequest,
    FulfilmentState,
    InspectionLine,
    InspectionRecord,
    InspectionRequest,
    ReturnReceipt,
    ReturnReceiptLineIn,
    ReturnReceiptRequest,
    ShipmentConfirmation,
    StockAdjustment,
    StockAdjustmentRequest,
    StockLevel,
    Warehouse,
)
from gateway_infra.clock import Clock, SystemClock
from system_api.backends.tryton.codec import utc
from system_api.backends.tryton.erp import (
    SALE_FIELDS,
    TrytonErp,
    ignore_shipment_exceptions,
    tryton_errors,
)
from system_api.backends.tryton.mapping import (
    CONFIRMED_SALE_STATES,
    OPEN_SHIPMENT_STATES,
    line_id_of,
    note_message,
    origin_id,
    parse_note,
    quantity,
)
from system_api.backends.tryton.rpc import BACKEND, TrytonClient
from system_api.errors import (
    BackendRejected,
    DocumentNotFound,
    InvalidDocumentState,
    PackageAfterCompletion,
    QuantityExceeded,
)

__all__ = ["TrytonWms"]

ADJUSTMENT_NOTE = "stock_adjustment"
RECEIPT_NOTE = "return_receipt"
INSPECTION_NOTE = "inspection"
PACKAGE_NOTE = "package"
COMPLETE_STATES = frozenset({FulfilmentState.SHIPPED, FulfilmentState.CANCELLED})
SHIPMENT_FIELDS = [
    "number",
    "state",
    "reference",
    "shipping_description",
    "shipping_reference",
    "outgoing_moves",
    "inventory_moves",
    "packages",
    "write_date",
    "create_date",
]
_Contents = dict[str, tuple[str, int]]  # line_id -> (sku, quantity)


@dataclass
class _Location:
    id: int
    code: str
    name: str
    storage: int
    input: int
    lost_found: int | None
    waste: list[int]
    quarantine: int | None


@dataclass
class _PackageState:
    reference: str
    carrier: str
    tracking: str
    contents: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    shipments: list[int] = field(default_factory=list)
    packages: list[int] = field(default_factory=list)
    moves: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))


@dataclass
class _FulfilmentState:
    fulfilment: Fulfilment
    sale: dict[str, Any]
    lines: dict[str, dict[str, Any]]  # line_id -> sale line
    shipments: list[dict[str, Any]]
    packages: dict[str, _PackageState]


class TrytonWms:
    """WmsPort over a Tryton database (see docs/decisions/0004-tryton-adapter.md)."""

    name = "tryton"

    def __init__(
        self,
        client: TrytonClient,
        erp: TrytonErp,
        *,
        clock: Clock | None = None,
        quarantine_code: str = "QUA",
        package_type: str | None = None,
    ) -> None:
        self.client = client
        self.erp = erp
        self.clock = clock or SystemClock()
        self.quarantine_code = quarantine_code
        self.package_type = package_type

    # ------------------------------------------------------------------ warehouses

    async def _warehouses(self) -> dict[str, _Location]:
        async def load() -> dict[str, _Location]:
            records = await self.client.search_read(
                "stock.location",
                [("type", "=", "warehouse"), ("code", "!=", None)],
                [
                    "code",
                    "name",
                    "storage_location",
                    "input_location",
                    "lost_found_location",
                    "waste_locations",
                ],
                order=[("code", "ASC")],
            )
            quarantine = await self.client.search_read(
                "stock.location",
                [("code", "=", self.quarantine_code), ("parent", "!=", None)],
                ["parent"],
            )
            by_parent = {q["parent"]: q["id"] for q in quarantine}
            return {
                r["code"]: _Location(
                    id=r["id"],
                    code=r["code"],
                    name=r["name"] or r["code"],
                    storage=r["storage_location"],
                    input=r["input_location"],
                    lost_found=r.get("lost_found_location"),
                    waste=list(r.get("waste_locations") or []),
                    quarantine=by_parent.get(r["id"]),
                )
                for r in records
                if r.get("storage_location")
            }

        return await self.client.cached("warehouses", load)

    async def _warehouse(self, code: str) -> _Location:
        warehouse = (await self._warehouses()).get(code)
        if warehouse is None:
            raise DocumentNotFound("warehouse", code)
        return warehouse

    async def list_warehouses(self) -> list[Warehouse]:
        async with tryton_errors():
            warehouses = await self._warehouses()
        return [Warehouse(code=w.code, name=w.name) for w in warehouses.values()]

    # ------------------------------------------------------------------ stock

    async def _on_hand(self, product_ids: list[int], location: int) -> dict[int, int]:
        records = await self.client.read(
            "product.product",
            sorted(set(product_ids)),
            ["quantity"],
            context={"locations": [location]},
        )
        return {r["id"]: quantity(r["quantity"]) for r in records}

    async def stock_levels(
        self, *, sku: str | None = None, warehouse: str | None = None
    ) -> list[StockLevel]:
        async with tryton_errors():
            warehouses = await self._warehouses()
            chosen = [warehouses[warehouse]] if warehouse in warehouses else []
            if warehouse is None:
                chosen = list(warehouses.values())
            levels: list[StockLevel] = []
            for location in chosen:
                domain: list[Any] = [("type", "=", "goods"), ("code", "!=", None)]
                if sku is not None:
                    domain += [("code", "=", sku), ("active", "in", [True, False])]
                else:
                    domain.append(("quantity", ">", 0))
                records = await self.client.search_read(
                    "product.product",
                    domain,
                    ["code", "quantity"],
                    context={"locations": [location.storage]},
                )
                levels += [
                    StockLevel(
                        sku=r["code"],
                        warehouse=location.code,
                        on_hand=max(0, quantity(r["quantity"])),
                    )
                    for r in records
                ]
        return sorted(levels, key=lambda level: (level.sku, level.warehouse))

    async def _product(self, sku: str) -> dict[str, Any]:
        records = await self.erp._product_records([sku])
        if sku not in records:
            raise DocumentNotFound("product", sku)
        return records[sku]

    async def adjust_stock(self, request: StockAdjustmentRequest) -> StockAdjustment:
        key = f"stock:{request.sku}@{request.warehouse}"
        async with self.client.lock(key), tryton_errors():
            warehouse = await self._warehouse(request.warehouse)
            product = await self._product(request.sku)
            applied = await self._applied_adjustment(request, warehouse)
            if applied is not None:
                return applied
            if warehouse.lost_found is None:
                raise BackendRejected(
                    BACKEND, f"warehouse {warehouse.code} has no lost and found location"
                )
            on_hand = (await self._on_hand([product["id"]], warehouse.storage))[product["id"]]
            if request.reason is AdjustmentReason.CYCLE_COUNT:
                assert request.counted is not None
                delta = request.counted - on_hand
            else:
                assert request.delta is not None
                delta = request.delta
            if on_hand + delta < 0:
                raise InvalidDocumentState(
                    f"{request.reason.value} of {-delta} units of {request.sku} in "
                    f"{warehouse.code} would take on-hand below zero: {on_hand} on hand"
                )
            source, target = (
                (warehouse.lost_found, warehouse.storage)
                if delta >= 0
                else (warehouse.storage, warehouse.lost_found)
            )
            at = self.clock.now()
            shipment = await self._internal_shipment(
                request.reference, source, target, {product["id"]: (abs(delta), product)}
            )
            adjustment = StockAdjustment(
                sku=request.sku,
                warehouse=warehouse.code,
                reason=request.reason,
                reference=request.reference,
                delta=delta,
                on_hand=on_hand + delta,
                at=at,
            )
            await self._note(
                "stock.shipment.internal",
                shipment,
                ADJUSTMENT_NOTE,
                adjustment.model_dump(mode="json"),
            )
            await self._finish_internal(shipment, allow_force=delta >= 0)
            return adjustment

    async def _applied_adjustment(
        self, request: StockAdjustmentRequest, warehouse: _Location
    ) -> StockAdjustment | None:
        shipments = await self.client.search_read(
            "stock.shipment.internal",
            [("reference", "=", request.reference)],
            ["state"],
            order=[("id", "ASC")],
        )
        for shipment in shipments:
            for note in await self._notes(
                "stock.shipment.internal", shipment["id"], ADJUSTMENT_NOTE
            ):
                if note.get("sku") != request.sku or note.get("warehouse") != warehouse.code:
                    continue
                if note.get("reason") != request.reason.value:
                    continue
                data = {k: v for k, v in note.items() if k != "gateway"}
                applied = StockAdjustment.model_validate(data)
                same = (
                    request.counted == applied.on_hand
                    if request.reason is AdjustmentReason.CYCLE_COUNT
                    else request.delta == applied.delta
                )
                if not same:
                    raise InvalidDocumentState(
                        f"reference {request.reference!r} was already applied to {request.sku} "
                        f"in {warehouse.code} as {applied.reason.value} of {applied.delta:+d} "
                        f"(on-hand {applied.on_hand}); a different change needs a reference "
                        "of its own"
                    )
                if shipment["state"] != "done":  # interrupted after the note: finish it
                    await self._finish_internal(shipment["id"], allow_force=applied.delta >= 0)
                return applied
        return None

    async def _internal_shipment(
        self,
        reference: str,
        source: int,
        target: int,
        products: dict[int, tuple[int, dict[str, Any]]],
    ) -> int:
        today = self.clock.now().date()
        moves = [
            {
                "product": product_id,
                "quantity": float(units),
                "unit": product["sale_uom"],
                "from_location": source,
                "to_location": target,
            }
            for product_id, (units, product) in products.items()
            if units
        ]
        values: dict[str, Any] = {
            "reference": reference,
            "from_location": source,
            "to_location": target,
            "planned_date": today,
            "planned_start_date": today,
        }
        if moves:
            values["moves"] = [["create", moves]]
        (shipment,) = await self.client.create("stock.shipment.internal", [values])
        return shipment

    async def _finish_internal(self, shipment: int, *, allow_force: bool) -> None:
        """wait, assign, done. Stock leaving a storage location must be there (assign_try);
        a forced assignment only where the source is not counted stock."""
        (record,) = await self.client.read("stock.shipment.internal", [shipment], ["state"])
        if record["state"] == "draft":
            await self.client.button("stock.shipment.internal", "wait", [shipment])
            record["state"] = "waiting"
        if record["state"] == "waiting":
            await self.client.button("stock.shipment.internal", "assign_try", [shipment])
            (record,) = await self.client.read("stock.shipment.internal", [shipment], ["state"])
            if record["state"] != "assigned":
                if not allow_force:
                    await self.client.button("stock.shipment.internal", "cancel", [shipment])
                    raise InvalidDocumentState(
                        "Tryton could not reserve the units to move (not enough on hand)"
                    )
                await self.client.button("stock.shipment.internal", "assign_force", [shipment])
        if record["state"] != "done":
            await self.client.button("stock.shipment.internal", "do", [shipment])

    # ------------------------------------------------------------------ notes

    async def _note(self, model: str, record: int, kind: str, data: dict[str, Any]) -> None:
        await self.client.create(
            "ir.note", [{"resource": f"{model},{record}", "message": note_message(kind, data)}]
        )

    async def _notes(self, model: str, record: int, kind: str) -> list[dict[str, Any]]:
        notes = await self.client.search_read(
            "ir.note", [("resource", "=", f"{model},{record}")], ["message"], order=[("id", "ASC")]
        )
        return [data for note in notes if (data := parse_note(note["message"], kind))]

    # ------------------------------------------------------------------ fulfilment

    async def request_fulfilment(self, request: FulfilmentRequest) -> Fulfilment:
        async with self.client.lock(f"fulfilment:{request.order_reference}"), tryton_errors():
            sale = await self.erp._sale_by_reference(request.order_reference)
            if sale is None:
                raise DocumentNotFound("sales order with reference", request.order_reference)
            if sale[
                "state"
            ] not in CONFIRMED_SALE_STATES or await self.erp._cancelled_after_confirm(sale):
                raise InvalidDocumentState(
                    f"sales order {sale['number']} is {sale['state']}; only confirmed orders "
                    "are released to the warehouse"
                )
            warehouse = await self._warehouse(request.warehouse)
            if sale["warehouse"] != warehouse.id:
                raise InvalidDocumentState(
                    f"sales order {sale['number']} ships from another warehouse than "
                    f"{request.warehouse}"
                )
            state = await self._load(sale)
            for line in request.lines:
                known = state.lines.get(line.line_id)
                if known is None or known["product."]["code"] != line.sku:
                    raise InvalidDocumentState(
                        f"sales order {sale['number']} has no line {line.line_id!r} of {line.sku}"
                    )
            return state.fulfilment

    async def get_fulfilment(self, fulfilment_id: str) -> Fulfilment | None:
        async with tryton_errors():
            sale = await self._sale_of_fulfilment(fulfilment_id)
            if sale is None:
                return None
            return (await self._load(sale)).fulfilment

    async def _sale_of_fulfilment(self, fulfilment_id: str) -> dict[str, Any] | None:
        shipments = await self.client.search_read(
            "stock.shipment.out", [("number", "=", fulfilment_id)], ["outgoing_moves"], limit=1
        )
        if not shipments:
            return None
        moves = await self.client.read("stock.move", shipments[0]["outgoing_moves"], ["sale"])
        sale_ids = sorted({m["sale"] for m in moves if m.get("sale")})
        if not sale_ids:
            return None
        (sale,) = await self.client.read("sale.sale", sale_ids[:1], SALE_FIELDS)
        return sale

    async def _load(self, sale: dict[str, Any]) -> _FulfilmentState:
        """The fulfilment of a confirmed sale: its customer shipments (one per package, plus
        the open one Tryton keeps for the rest) and the returns that corrected packages."""
        lines = {line_id_of(line): line for line in await self.erp.sale_lines(sale)}
        line_of_sale_line = {line["id"]: line_id for line_id, line in lines.items()}
        shipments = await self.client.read(
            "stock.shipment.out", sorted(sale["shipments"]), SHIPMENT_FIELDS
        )
        if not shipments:
            raise InvalidDocumentState(f"sales order {sale['number']} has nothing to ship")
        moves = {
            m["id"]: m
            for m in await self.client.read(
                "stock.move",
                [i for s in shipments for i in s["outgoing_moves"]],
                ["origin", "quantity", "state", "product", "to_location"],
            )
        }
        packages: dict[str, _PackageState] = {}
        move_package: dict[int, str] = {}
        for shipment in shipments:
            reference = shipment["reference"]
            if shipment["state"] != "done" or not reference:
                continue
            package = packages.get(reference)
            if package is None:
                package = packages[reference] = _PackageState(
                    reference=reference,
                    carrier=shipment["shipping_description"] or "unknown",
                    tracking=shipment["shipping_reference"] or "unknown",
                )
            package.carrier = shipment["shipping_description"] or package.carrier
            package.tracking = shipment["shipping_reference"] or package.tracking
            package.shipments.append(shipment["id"])
            package.packages += shipment["packages"]
            for move_id in shipment["outgoing_moves"]:
                move = moves.get(move_id)
                sale_line = origin_id(move and move["origin"], "sale.line")
                if move is None or move["state"] != "done" or sale_line not in line_of_sale_line:
                    continue
                line_id = line_of_sale_line[sale_line]
                package.contents[line_id] += quantity(move["quantity"])
                package.moves[line_id].append((move_id, quantity(move["quantity"])))
                move_package[move_id] = reference
        package_of_shipment = {
            shipment_id: package
            for package in packages.values()
            for shipment_id in package.shipments
        }
        if package_of_shipment:
            notes = await self.client.search_read(
                "ir.note",
                [("resource", "in", [f"stock.shipment.out,{i}" for i in package_of_shipment])],
                ["resource", "message"],
                order=[("id", "ASC")],
            )
            for note in notes:
                data = parse_note(note["message"], PACKAGE_NOTE)
                shipment_id = origin_id(note["resource"], "stock.shipment.out")
                package = package_of_shipment.get(shipment_id or 0)
                if data and package is not None and package.shipments[-1] == shipment_id:
                    package.carrier = data["carrier"]
                    package.tracking = data["tracking"]
        if move_package:
            corrections = await self.client.search_read(
                "stock.move",
                [
                    ("origin", "in", [f"stock.move,{i}" for i in move_package]),
                    ("state", "=", "done"),
                    ("shipment", "like", "stock.shipment.out.return,%"),
                ],
                ["origin", "quantity"],
            )
            for correction in corrections:
                shipped_move = origin_id(correction["origin"], "stock.move") or 0
                reference = move_package[shipped_move]
                sale_line = origin_id(moves[shipped_move]["origin"], "sale.line")
                line_id = line_of_sale_line[sale_line or 0]
                packages[reference].contents[line_id] -= quantity(correction["quantity"])
                packages[reference].moves[line_id].append(
                    (shipped_move, -quantity(correction["quantity"]))
                )
        shipped: dict[str, int] = defaultdict(int)
        for package in packages.values():
            for line_id, units in package.contents.items():
                shipped[line_id] += units
        open_shipments = [s for s in shipments if s["state"] in OPEN_SHIPMENT_STATES]
        if not open_shipments:
            state = (
                FulfilmentState.SHIPPED
                if any(s["state"] == "done" for s in shipments)
                else FulfilmentState.CANCELLED
            )
        elif any(shipped.values()):
            state = FulfilmentState.PARTIALLY_SHIPPED
        else:
            state = FulfilmentState.RELEASED
        completed_at = None
        if state in COMPLETE_STATES:
            completed_at = max(utc(s["write_date"] or s["create_date"]) for s in shipments)
        (warehouse,) = await self.client.read("stock.location", [sale["warehouse"]], ["code"])
        fulfilment = Fulfilment(
            fulfilment_id=shipments[0]["number"],
            order_reference=sale["reference"],
            warehouse=warehouse["code"] or str(sale["warehouse"]),
            state=state,
            lines=[
                FulfilmentLine(
                    line_id=line_id,
                    sku=line["product."]["code"],
                    quantity=quantity(line["quantity"]),
                    shipped_quantity=max(0, shipped[line_id]),
                )
                for line_id, line in lines.items()
            ],
            packages=[
                Package(
                    package_reference=package.reference,
                    carrier=package.carrier,
                    tracking_number=package.tracking,
                    lines=[
                        ShipmentLine(
                            line_id=line_id, sku=lines[line_id]["product."]["code"], quantity=units
                        )
                        for line_id, units in package.contents.items()
                        if units > 0
                    ],
                )
                for package in packages.values()
                if any(units > 0 for units in package.contents.values())
            ],
            completed_at=completed_at,
        )
        return _FulfilmentState(fulfilment, sale, lines, shipments, packages)

    async def confirm_shipment(
        self, fulfilment_id: str, confirmation: ShipmentConfirmation
    ) -> Fulfilment:
        async with self.client.lock(f"fulfilment-id:{fulfilment_id}"), tryton_errors():
            sale = await self._sale_of_fulfilment(fulfilment_id)
            if sale is None:
                raise DocumentNotFound("fulfilment", fulfilment_id)
            state = await self._load(sale)
            if state.fulfilment.state in COMPLETE_STATES:
                raise PackageAfterCompletion(
                    fulfilment_id, confirmation.packages[0].package_reference
                )
            plan = self._plan(fulfilment_id, state, confirmation)
            await self._check_stock(state, plan)
            for package, ship, unship in plan:
                if unship:
                    await self._unship(state, package.package_reference, unship)
                if ship:
                    await self._ship(state, package, ship)
                elif package.package_reference in state.packages:
                    await self._retrack(state.packages[package.package_reference], package)
            if confirmation.complete:
                await self._close(state)
            return (await self._load(await self.erp._sale(sale["id"]))).fulfilment

    def _plan(
        self, fulfilment_id: str, state: _FulfilmentState, confirmation: ShipmentConfirmation
    ) -> list[tuple[Package, dict[str, int], dict[str, int]]]:
        """Per package: units to ship now and units to take back (a correction), by line."""
        shipped = {line.line_id: line.shipped_quantity for line in state.fulfilment.lines}
        plan: list[tuple[Package, dict[str, int], dict[str, int]]] = []
        for package in confirmation.packages:
            new = self._contents(fulfilment_id, package, state.lines)
            stored = state.packages.get(package.package_reference)
            old = dict(stored.contents) if stored is not None else {}
            if (
                stored is not None
                and stored.carrier == package.carrier
                and stored.tracking == package.tracking_number
                and {k: v for k, v in old.items() if v} == new
            ):
                continue  # the same package again: nothing to correct
            ship: dict[str, int] = {}
            unship: dict[str, int] = {}
            for line_id in old.keys() | new.keys():
                change = new.get(line_id, 0) - old.get(line_id, 0)
                shipped[line_id] = shipped.get(line_id, 0) + change
                if change > 0:
                    ship[line_id] = change
                elif change < 0:
                    unship[line_id] = -change
            plan.append((package, ship, unship))
        for line_id, units in shipped.items():
            ordered = quantity(state.lines[line_id]["quantity"])
            if units > ordered:
                raise QuantityExceeded(
                    f"line {line_id!r} of fulfilment {fulfilment_id} would ship {units} units; "
                    f"{ordered} were ordered"
                )
        return plan

    @staticmethod
    def _contents(
        fulfilment_id: str, package: Package, lines: dict[str, dict[str, Any]]
    ) -> dict[str, int]:
        contents: dict[str, int] = {}
        reference = package.package_reference
        for item in package.lines:
            line = lines.get(item.line_id)
            if line is None:
                raise InvalidDocumentState(
                    f"package {reference!r} ships line {item.line_id!r}, which fulfilment "
                    f"{fulfilment_id} does not have"
                )
            if line["product."]["code"] != item.sku:
                raise InvalidDocumentState(
                    f"package {reference!r} ships {item.sku} on line {item.line_id!r}, which is "
                    f"{line['product.']['code']} in fulfilment {fulfilment_id}"
                )
            if item.line_id in contents:
                raise InvalidDocumentState(
                    f"package {reference!r} lists line {item.line_id!r} twice"
                )
            contents[item.line_id] = item.quantity
        return contents

    async def _check_stock(
        self, state: _FulfilmentState, plan: list[tuple[Package, dict[str, int], dict[str, int]]]
    ) -> None:
        needed: dict[int, int] = defaultdict(int)
        for _package, ship, unship in plan:
            for line_id, units in ship.items():
                needed[state.lines[line_id]["product"]] += units
            for line_id, units in unship.items():
                needed[state.lines[line_id]["product"]] -= units
        wanted = {product: units for product, units in needed.items() if units > 0}
        if not wanted:
            return
        warehouse = await self._warehouse_of(state.sale)
        on_hand = await self._on_hand(list(wanted), warehouse.storage)
        codes = {line["product"]: line["product."]["code"] for line in state.lines.values()}
        for product, units in sorted(wanted.items()):
            if on_hand.get(product, 0) < units:
                raise InvalidDocumentState(
                    f"not enough {codes[product]} on hand in {warehouse.code} to ship: "
                    f"{on_hand.get(product, 0)} on hand, {units} to ship"
                )

    async def _warehouse_of(self, sale: dict[str, Any]) -> _Location:
        for warehouse in (await self._warehouses()).values():
            if warehouse.id == sale["warehouse"]:
                return warehouse
        raise BackendRejected(BACKEND, f"the warehouse of sale {sale['number']} has no code")

    async def _package_type(self) -> int:
        async def load() -> int:
            domain: list[Any] = [("name", "=", self.package_type)] if self.package_type else []
            types = await self.client.search("stock.package.type", domain, limit=1)
            if not types:
                raise BackendRejected(BACKEND, "Tryton has no stock.package.type for packages")
            return types[0]

        return await self.client.cached("package-type", load)

    async def _open_shipment(self, state: _FulfilmentState) -> dict[str, Any]:
        sale = await self.erp._sale(state.sale["id"])
        shipments = await self.client.read(
            "stock.shipment.out", sorted(sale["shipments"]), SHIPMENT_FIELDS
        )
        for shipment in shipments:
            if shipment["state"] in ("waiting", "assigned", "draft"):
                return shipment
        raise InvalidDocumentState(
            f"sales order {state.sale['number']} has no open customer shipment left"
        )

    async def _ship(self, state: _FulfilmentState, package: Package, ship: dict[str, int]) -> None:
        """Ship units from the open customer shipment as one package: set the quantities,
        assign, pick, pack into a stock.package, done. Tryton keeps the rest in a backorder."""
        shipment = await self._open_shipment(state)
        sid = shipment["id"]
        if shipment["state"] in ("draft", "assigned"):
            await self.client.button("stock.shipment.out", "wait", [sid])
        outgoing = await self.client.read(
            "stock.move", shipment["outgoing_moves"], ["origin", "quantity"]
        )
        inventory = await self.client.read(
            "stock.move", shipment["inventory_moves"], ["origin", "quantity"]
        )
        line_of = {line["id"]: line_id for line_id, line in state.lines.items()}
        wanted: dict[int, int] = {}  # outgoing move -> units to ship now
        remaining = dict(ship)
        for move in outgoing:
            line_id = line_of.get(origin_id(move["origin"], "sale.line") or 0)
            if line_id is None:
                continue
            units = remaining.pop(line_id, 0)
            wanted[move["id"]] = units
            if units > quantity(move["quantity"]):  # after a correction: ship more than planned
                await self.client.write("stock.move", [move["id"]], {"quantity": float(units)})
        if remaining:
            raise InvalidDocumentState(
                f"the open shipment of sales order {state.sale['number']} has nothing left of "
                f"line(s) {', '.join(sorted(remaining))}"
            )
        seen: set[int] = set()
        for move in inventory:
            outgoing_id = origin_id(move["origin"], "stock.move") or 0
            units = 0 if outgoing_id in seen else wanted.get(outgoing_id, 0)
            seen.add(outgoing_id)
            if quantity(move["quantity"]) != units:
                await self.client.write("stock.move", [move["id"]], {"quantity": float(units)})
        await self.client.button("stock.shipment.out", "assign_try", [sid])
        (assigned,) = await self.client.read("stock.shipment.out", [sid], ["state"])
        if assigned["state"] != "assigned":
            await self.client.button("stock.shipment.out", "wait", [sid])
            raise InvalidDocumentState(
                f"Tryton could not reserve the units of package {package.package_reference!r} "
                "(not enough on hand)"
            )
        await self.client.button("stock.shipment.out", "pick", [sid])
        (picked,) = await self.client.read("stock.shipment.out", [sid], ["outgoing_moves"])
        moves = await self.client.read("stock.move", picked["outgoing_moves"], ["quantity"])
        packed = [m["id"] for m in moves if m["quantity"] > 0]
        await self.client.create(
            "stock.package",
            [
                {
                    "type": await self._package_type(),
                    "shipment": f"stock.shipment.out,{sid}",
                    "moves": [["add", packed]],
                    "shipping_reference": package.tracking_number,
                }
            ],
        )
        await self.client.write(
            "stock.shipment.out",
            [sid],
            {
                "reference": package.package_reference,
                "shipping_description": package.carrier,
                "shipping_reference": package.tracking_number,
            },
        )
        await self.client.button("stock.shipment.out", "pack", [sid])
        await self.client.button("stock.shipment.out", "do", [sid])
        known = state.packages.get(package.package_reference)
        if known is not None:  # a correction that ships more: the package's tracking moves on
            await self._retrack(known, package)

    async def _unship(
        self, state: _FulfilmentState, reference: str, unship: dict[str, int]
    ) -> None:
        """Take units of a shipped package back: Tryton's shipment is done and stays so; a
        customer return shipment with the package reference brings the units back to storage,
        its moves pointing at the shipped moves they correct."""
        package = state.packages[reference]
        warehouse = await self._warehouse_of(state.sale)
        today = self.clock.now().date()
        moves: list[dict[str, Any]] = []
        shipped_moves = await self.client.read(
            "stock.move",
            sorted({m for entries in package.moves.values() for m, units in entries if units > 0}),
            ["product", "unit", "unit_price", "currency", "to_location"],
        )
        by_id = {m["id"]: m for m in shipped_moves}
        for line_id, units in sorted(unship.items()):
            net: dict[int, int] = defaultdict(int)
            for move_id, change in package.moves[line_id]:
                net[move_id] += change
            for move_id, available in net.items():
                take = min(units, available)
                if take <= 0:
                    continue
                units -= take
                move = by_id[move_id]
                moves.append(
                    {
                        "product": move["product"],
                        "quantity": float(take),
                        "unit": move["unit"],
                        "from_location": move["to_location"],
                        "to_location": warehouse.input,
                        "unit_price": move["unit_price"],
                        "currency": move["currency"],
                        "origin": f"stock.move,{move_id}",
                    }
                )
            if units:
                raise QuantityExceeded(
                    f"package {reference!r} holds too few units of line {line_id}"
                )
        (returned,) = await self.client.create(
            "stock.shipment.out.return",
            [
                {
                    "customer": state.sale["party"],
                    "contact_address": state.sale["shipment_address"],
                    "reference": reference,
                    "warehouse": warehouse.id,
                    "warehouse_input": warehouse.input,
                    "warehouse_storage": warehouse.storage,
                    "planned_date": today,
                    "incoming_moves": [["create", moves]],
                }
            ],
        )
        await self.client.button("stock.shipment.out.return", "receive", [returned])
        await self.client.button("stock.shipment.out.return", "do", [returned])

    async def _retrack(self, known: _PackageState, package: Package) -> None:
        """A new tracking number (or carrier) for a shipped package. Tryton lets the tracking
        reference change on done shipments and closed packages, not the carrier: a changed
        carrier is kept in an ir.note on the package's last shipment."""
        await self.client.write(
            "stock.shipment.out", known.shipments, {"shipping_reference": package.tracking_number}
        )
        await self.client.write(
            "stock.package", known.packages, {"shipping_reference": package.tracking_number}
        )
        if package.carrier != known.carrier:
            await self._note(
                "stock.shipment.out",
                known.shipments[-1],
                PACKAGE_NOTE,
                {"carrier": package.carrier, "tracking": package.tracking_number},
            )

    async def _close(self, state: _FulfilmentState) -> None:
        """Nothing more ships: cancel the open shipment(s), and tell the sale to stop waiting."""
        sale = await self.erp._sale(state.sale["id"])
        shipments = await self.client.read("stock.shipment.out", sale["shipments"], ["state"])
        open_ids = [s["id"] for s in shipments if s["state"] in OPEN_SHIPMENT_STATES]
        if open_ids:
            await self.client.button("stock.shipment.out", "cancel", open_ids)
        await ignore_shipment_exceptions(self.client, sale["id"])

    # ------------------------------------------------------------------ returns

    async def _return_by_rma(self, rma_reference: str) -> dict[str, Any] | None:
        records = await self.client.search_read(
            "stock.shipment.out.return",
            [("reference", "=", rma_reference)],
            ["number", "state", "create_date", "incoming_moves", "inventory_moves", "warehouse"],
            order=[("id", "ASC")],
        )
        for record in records:
            if await self._notes("stock.shipment.out.return", record["id"], RECEIPT_NOTE):
                return record
        return None

    async def _receipt(self, record: dict[str, Any]) -> ReturnReceipt:
        (note,) = (await self._notes("stock.shipment.out.return", record["id"], RECEIPT_NOTE))[:1]
        return ReturnReceipt(
            receipt_id=record["number"],
            rma_reference=note["rma_reference"],
            order_reference=note["order_reference"],
            warehouse=note["warehouse"],
            lines=[ReturnReceiptLineIn.model_validate(line) for line in note["lines"]],
            received_at=note["received_at"],
        )

    async def receive_return(self, request: ReturnReceiptRequest) -> ReturnReceipt:
        async with self.client.lock(f"rma:{request.rma_reference}"), tryton_errors():
            existing = await self._return_by_rma(request.rma_reference)
            if existing is not None:
                if existing["state"] in ("draft", "waiting"):
                    await self.client.button(
                        "stock.shipment.out.return", "receive", [existing["id"]]
                    )
                return await self._receipt(existing)
            warehouse = await self._warehouse(request.warehouse)
            sale = await self.erp._sale_by_reference(request.order_reference)
            if sale is None:
                raise DocumentNotFound("sales order with reference", request.order_reference)
            lines = {line_id_of(line): line for line in await self.erp.sale_lines(sale)}
            (party,) = await self.client.read("party.party", [sale["party"]], ["customer_location"])
            moves = []
            for item in request.lines:
                line = lines.get(item.line_id)
                if line is None or line["product."]["code"] != item.sku:
                    raise InvalidDocumentState(
                        f"order {request.order_reference} has no line {item.line_id!r} "
                        f"of {item.sku}"
                    )
                moves.append(
                    {
                        "product": line["product"],
                        "quantity": float(item.quantity),
                        "unit": line["unit"],
                        "from_location": party["customer_location"],
                        "to_location": warehouse.input,
                        "unit_price": line["unit_price"],
                        "currency": sale["currency"],
                    }
                )
            (returned,) = await self.client.create(
                "stock.shipment.out.return",
                [
                    {
                        "customer": sale["party"],
                        "contact_address": sale["shipment_address"],
                        "reference": request.rma_reference,
                        "warehouse": warehouse.id,
                        "warehouse_input": warehouse.input,
                        "warehouse_storage": warehouse.storage,
                        "planned_date": self.clock.now().date(),
                        "incoming_moves": [["create", moves]],
                    }
                ],
            )
            receipt = ReturnReceipt(
                receipt_id="pending",
                rma_reference=request.rma_reference,
                order_reference=request.order_reference,
                warehouse=warehouse.code,
                lines=list(request.lines),
                received_at=self.clock.now(),
            )
            await self._note(
                "stock.shipment.out.return",
                returned,
                RECEIPT_NOTE,
                receipt.model_dump(mode="json", exclude={"receipt_id"}),
            )
            # Received: the goods are in the warehouse's input zone, not in storage (not sellable).
            await self.client.button("stock.shipment.out.return", "receive", [returned])
            (record,) = await self.client.read(
                "stock.shipment.out.return", [returned], ["number", "state"]
            )
            return receipt.model_copy(update={"receipt_id": record["number"]})

    async def record_inspection(
        self, rma_reference: str, request: InspectionRequest
    ) -> InspectionRecord:
        async with self.client.lock(f"rma:{rma_reference}"), tryton_errors():
            record = await self._return_by_rma(rma_reference)
            if record is None:
                raise DocumentNotFound("return receipt", rma_reference)
            receipt = await self._receipt(record)
            lines = [line.model_dump(mode="json") for line in request.lines]
            stored = await self._notes("stock.shipment.out.return", record["id"], INSPECTION_NOTE)
            if stored:
                if _canonical(stored[0]["lines"]) != _canonical(lines):
                    raise InvalidDocumentState(
                        f"return {rma_reference} was already inspected, with other results; "
                        "an inspection is recorded once"
                    )
                return InspectionRecord(
                    rma_reference=rma_reference,
                    warehouse=receipt.warehouse,
                    lines=[InspectionLine.model_validate(line) for line in stored[0]["lines"]],
                    inspected_at=stored[0]["inspected_at"],
                )
            received = {line.line_id: line for line in receipt.lines}
            inspected: dict[str, int] = defaultdict(int)
            for line in request.lines:
                receipt_line = received.get(line.line_id)
                if receipt_line is None:
                    raise InvalidDocumentState(
                        f"return {rma_reference} received nothing of line {line.line_id!r}"
                    )
                if receipt_line.sku != line.sku:
                    raise InvalidDocumentState(
                        f"line {line.line_id!r} of return {rma_reference} received "
                        f"{receipt_line.sku}, the inspection names {line.sku}"
                    )
                inspected[line.line_id] += line.quantity
            for line_id, units in inspected.items():
                if units > received[line_id].quantity:
                    raise QuantityExceeded(
                        f"line {line_id!r} of return {rma_reference}: {units} units inspected, "
                        f"{received[line_id].quantity} received"
                    )
            warehouse = await self._warehouse(receipt.warehouse)
            await self._dispose(record, warehouse, request, rma_reference)
            inspection = InspectionRecord(
                rma_reference=rma_reference,
                warehouse=warehouse.code,
                lines=list(request.lines),
                inspected_at=self.clock.now(),
            )
            await self._note(
                "stock.shipment.out.return",
                record["id"],
                INSPECTION_NOTE,
                inspection.model_dump(mode="json"),
            )
            return inspection

    async def _dispose(
        self,
        record: dict[str, Any],
        warehouse: _Location,
        request: InspectionRequest,
        rma_reference: str,
    ) -> None:
        """The received goods (in the input zone) go where the inspection says: restocked to
        storage and scrapped to a waste location by the return shipment's own inventory moves;
        quarantined ones by an internal shipment input zone -> quarantine location."""
        per_sku: dict[str, dict[Disposition, int]] = defaultdict(lambda: defaultdict(int))
        for line in request.lines:
            per_sku[line.sku][line.disposition] += line.quantity
        products = await self.erp._product_records(list(per_sku))
        by_product = {products[sku]["id"]: sku for sku in per_sku}
        if any(d[Disposition.SCRAP] for d in per_sku.values()) and not warehouse.waste:
            raise BackendRejected(
                BACKEND, f"warehouse {warehouse.code} has no waste location to scrap goods into"
            )
        quarantined = {
            products[sku]["id"]: (d[Disposition.QUARANTINE], products[sku])
            for sku, d in per_sku.items()
            if d[Disposition.QUARANTINE]
        }
        if quarantined and warehouse.quarantine is None:
            raise BackendRejected(
                BACKEND, f"warehouse {warehouse.code} has no {self.quarantine_code} location"
            )
        (current,) = await self.client.read(
            "stock.shipment.out.return", [record["id"]], ["state", "inventory_moves"]
        )
        if current["state"] == "received":
            inventory = await self.client.read(
                "stock.move", current["inventory_moves"], ["product", "quantity", "unit"]
            )
            done_products: set[int] = set()
            for move in inventory:
                sku = by_product.get(move["product"])
                if sku is None or move["product"] in done_products:
                    await self.client.call("stock.move", "delete", [move["id"]])
                    continue
                done_products.add(move["product"])
                restock = per_sku[sku][Disposition.RESTOCK]
                scrap = per_sku[sku][Disposition.SCRAP]
                if restock:
                    await self.client.write(
                        "stock.move",
                        [move["id"]],
                        {"quantity": float(restock), "to_location": warehouse.storage},
                    )
                if scrap:
                    values = {
                        "quantity": float(scrap),
                        "to_location": warehouse.waste[0],
                    }
                    if restock:
                        await self.client.create(
                            "stock.move",
                            [
                                {
                                    **values,
                                    "product": move["product"],
                                    "unit": move["unit"],
                                    "from_location": warehouse.input,
                                    "shipment": f"stock.shipment.out.return,{record['id']}",
                                }
                            ],
                        )
                    else:
                        await self.client.write("stock.move", [move["id"]], values)
                if not restock and not scrap:
                    await self.client.call("stock.move", "delete", [move["id"]])
            await self.client.button("stock.shipment.out.return", "do", [record["id"]])
        if quarantined:
            known = await self.client.search(
                "stock.shipment.internal", [("reference", "=", f"{rma_reference} quarantine")]
            )
            if not known:
                assert warehouse.quarantine is not None
                shipment = await self._internal_shipment(
                    f"{rma_reference} quarantine",
                    warehouse.input,
                    warehouse.quarantine,
                    quarantined,
                )
                await self._finish_internal(shipment, allow_force=False)


def _canonical(lines: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(line, sort_keys=True) for line in lines)
