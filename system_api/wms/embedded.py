"""The embedded reference WMS: warehouses, stock, fulfilment, shipments and returns in the
gateway's database.

Every change of a count is written to the ledger in the same transaction as the count itself, so
the on-hand ledger entries of a SKU in a warehouse always sum to its on-hand. It is the reference
every other WMS adapter is held to.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

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
from gateway_infra.unit_of_work import Store, UnitOfWork
from system_api.erp.numbering import next_document_number
from system_api.errors import (
    DocumentNotFound,
    InvalidDocumentState,
    PackageAfterCompletion,
    QuantityExceeded,
)
from system_api.tables import (
    wms_fulfilment_lines,
    wms_fulfilments,
    wms_inspections,
    wms_ledger,
    wms_package_lines,
    wms_packages,
    wms_return_receipts,
    wms_stock,
    wms_warehouses,
)

__all__ = [
    "COMPLETE_STATES",
    "EmbeddedWms",
    "LedgerBucket",
    "LedgerReason",
    "ensure_warehouse",
    "ledger_on_hand",
]

SOURCE = "system_api.wms.embedded"
T = TypeVar("T")

COMPLETE_STATES = frozenset({FulfilmentState.SHIPPED, FulfilmentState.CANCELLED})
"""States after which a fulfilment's packages are final."""

# Package references longer than this are keyed by a digest in ledger references (which hold 128
# characters: "FUL-000001#12/" plus the package key must fit).
_MAX_PLAIN_PACKAGE_KEY = 96


class LedgerBucket:
    """Where ledger units sit: only on_hand is sellable."""

    ON_HAND = "on_hand"
    QUARANTINED = "quarantined"
    SCRAPPED = "scrapped"


class LedgerReason:
    """Why a ledger entry was written (adjustments use their AdjustmentReason value)."""

    SHIPMENT = "shipment"
    SHIPMENT_CORRECTION = "shipment_correction"
    RETURN_RESTOCK = "return_restock"
    RETURN_QUARANTINE = "return_quarantine"
    RETURN_SCRAP = "return_scrap"


_DISPOSITION_LEDGER = {
    Disposition.RESTOCK: (LedgerBucket.ON_HAND, LedgerReason.RETURN_RESTOCK),
    Disposition.QUARANTINE: (LedgerBucket.QUARANTINED, LedgerReason.RETURN_QUARANTINE),
    Disposition.SCRAP: (LedgerBucket.SCRAPPED, LedgerReason.RETURN_SCRAP),
}


class EmbeddedWms:
    """WmsPort over the gateway's own tables; each operation is one transaction.

    Creating operations also exist as `*_outcome` variants that tell whether the document was
    created now (True) or was already there (False), for the HTTP layer's 201/200.
    """

    name = "embedded"

    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------ warehouses and stock

    async def ensure_warehouse(self, code: str, name: str) -> Warehouse:
        """Create the warehouse, or rename it if it exists (set-up and seeding)."""
        return await self._write_once(lambda uow: ensure_warehouse(uow, code, name))

    def ensure_warehouse_sync(self, uow: UnitOfWork, code: str, name: str) -> Warehouse:
        """The same inside a unit of work the caller runs (seeding along with other set-up)."""
        return ensure_warehouse(uow, code, name)

    async def list_warehouses(self) -> list[Warehouse]:
        def query(conn: Connection) -> list[Warehouse]:
            rows = conn.execute(select(wms_warehouses).order_by(wms_warehouses.c.code))
            return [Warehouse(code=row.code, name=row.name) for row in rows]

        return await self.store.read(query)

    async def stock_levels(
        self, *, sku: str | None = None, warehouse: str | None = None
    ) -> list[StockLevel]:
        def query(conn: Connection) -> list[StockLevel]:
            stmt = select(wms_stock).order_by(wms_stock.c.sku, wms_stock.c.warehouse)
            if sku is not None:
                stmt = stmt.where(wms_stock.c.sku == sku)
            if warehouse is not None:
                stmt = stmt.where(wms_stock.c.warehouse == warehouse)
            return [
                StockLevel(sku=row.sku, warehouse=row.warehouse, on_hand=row.on_hand)
                for row in conn.execute(stmt)
            ]

        return await self.store.read(query)

    async def ledger_on_hand(self, sku: str, warehouse: str) -> int:
        """The sum of the on-hand ledger entries of a SKU in a warehouse: equals its on-hand."""
        return await self.store.read(lambda conn: ledger_on_hand(conn, sku, warehouse))

    async def adjust_stock(self, request: StockAdjustmentRequest) -> StockAdjustment:
        adjustment, _ = await self.adjust_stock_outcome(request)
        return adjustment

    async def adjust_stock_outcome(
        self, request: StockAdjustmentRequest
    ) -> tuple[StockAdjustment, bool]:
        """The adjustment, and whether it was applied now (False: the reference was known)."""
        return await self._write_once(lambda uow: _adjust_stock(uow, request))

    # ------------------------------------------------------------ fulfilment

    async def request_fulfilment(self, request: FulfilmentRequest) -> Fulfilment:
        fulfilment, _ = await self.request_fulfilment_outcome(request)
        return fulfilment

    async def request_fulfilment_outcome(
        self, request: FulfilmentRequest
    ) -> tuple[Fulfilment, bool]:
        """The fulfilment, and whether it was released now (False: the order was known)."""
        return await self._write_once(lambda uow: _request_fulfilment(uow, request))

    async def get_fulfilment(self, fulfilment_id: str) -> Fulfilment | None:
        return await self.store.read(
            lambda conn: _fulfilment_by(conn, wms_fulfilments.c.fulfilment_id == fulfilment_id)
        )

    async def confirm_shipment(
        self, fulfilment_id: str, confirmation: ShipmentConfirmation
    ) -> Fulfilment:
        return await self.store.write(
            lambda uow: _confirm_shipment(uow, fulfilment_id, confirmation)
        )

    # ------------------------------------------------------------ returns

    async def receive_return(self, request: ReturnReceiptRequest) -> ReturnReceipt:
        receipt, _ = await self.receive_return_outcome(request)
        return receipt

    async def receive_return_outcome(
        self, request: ReturnReceiptRequest
    ) -> tuple[ReturnReceipt, bool]:
        """The receipt, and whether it was recorded now (False: the RMA was known)."""
        return await self._write_once(lambda uow: _receive_return(uow, request))

    async def record_inspection(
        self, rma_reference: str, request: InspectionRequest
    ) -> InspectionRecord:
        record, _ = await self.record_inspection_outcome(rma_reference, request)
        return record

    async def record_inspection_outcome(
        self, rma_reference: str, request: InspectionRequest
    ) -> tuple[InspectionRecord, bool]:
        """The inspection, and whether it was recorded now (False: the same one was known)."""
        return await self._write_once(lambda uow: _record_inspection(uow, rma_reference, request))

    async def _write_once(self, fn: Callable[[UnitOfWork], T]) -> T:
        """Run a unit of work that is idempotent by a unique reference.

        A concurrent request with the same reference may win the insert (PostgreSQL); run once
        more, and this time see what it committed.
        """
        try:
            return await self.store.write(fn)
        except IntegrityError:
            return await self.store.write(fn)


# ---------------------------------------------------------------- warehouses and stock


def ensure_warehouse(uow: UnitOfWork, code: str, name: str) -> Warehouse:
    """Create the warehouse, or rename it if it exists; for seeding inside a unit of work."""
    warehouse = Warehouse(code=code, name=name)
    conn = uow.conn
    known = conn.execute(
        select(wms_warehouses.c.name).where(wms_warehouses.c.code == warehouse.code)
    ).first()
    if known is None:
        conn.execute(insert(wms_warehouses).values(code=warehouse.code, name=warehouse.name))
    elif known.name != warehouse.name:
        conn.execute(
            update(wms_warehouses)
            .where(wms_warehouses.c.code == warehouse.code)
            .values(name=warehouse.name)
        )
    return warehouse


def ledger_on_hand(conn: Connection, sku: str, warehouse: str) -> int:
    """Sum of the on-hand ledger entries of a SKU in a warehouse."""
    total = conn.execute(
        select(func.coalesce(func.sum(wms_ledger.c.delta), 0)).where(
            wms_ledger.c.sku == sku,
            wms_ledger.c.warehouse == warehouse,
            wms_ledger.c.bucket == LedgerBucket.ON_HAND,
        )
    ).scalar_one()
    return int(total)


def _require_warehouse(conn: Connection, code: str) -> None:
    found = conn.execute(select(wms_warehouses.c.code).where(wms_warehouses.c.code == code)).first()
    if found is None:
        raise DocumentNotFound("warehouse", code)


def _for_update(conn: Connection, query: Select[Any]) -> Select[Any]:
    """Lock the selected rows on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers."""
    return query if conn.dialect.name == "sqlite" else query.with_for_update()


@dataclass
class _StockRow:
    sku: str
    warehouse: str
    on_hand: int
    quarantined: int


def _locked_stock(conn: Connection, sku: str, warehouse: str, now: datetime) -> _StockRow:
    """The stock row of a SKU in a warehouse, locked for this transaction; created empty if new.

    Callers lock several rows in SKU order, so two transactions never wait on each other in turn.
    """
    query = _for_update(
        conn,
        select(wms_stock.c.on_hand, wms_stock.c.quarantined).where(
            wms_stock.c.sku == sku, wms_stock.c.warehouse == warehouse
        ),
    )
    row = conn.execute(query).first()
    if row is None:
        values = {
            "sku": sku,
            "warehouse": warehouse,
            "on_hand": 0,
            "quarantined": 0,
            "updated_at": now,
        }
        create: Any = (
            postgresql.insert(wms_stock)
            if conn.dialect.name == "postgresql"
            else sqlite.insert(wms_stock)
        )
        conn.execute(
            create.values(values).on_conflict_do_nothing(
                index_elements=[wms_stock.c.sku, wms_stock.c.warehouse]
            )
        )
        row = conn.execute(query).one()
    return _StockRow(sku, warehouse, row.on_hand, row.quarantined)


def _save_stock(conn: Connection, stock: _StockRow, now: datetime) -> None:
    conn.execute(
        update(wms_stock)
        .where(wms_stock.c.sku == stock.sku, wms_stock.c.warehouse == stock.warehouse)
        .values(on_hand=stock.on_hand, quarantined=stock.quarantined, updated_at=now)
    )


def _ledger_entry(
    sku: str, warehouse: str, bucket: str, delta: int, reason: str, reference: str, at: datetime
) -> dict[str, Any]:
    return {
        "sku": sku,
        "warehouse": warehouse,
        "bucket": bucket,
        "delta": delta,
        "reason": reason,
        "reference": reference,
        "at": at,
    }


def _adjust_stock(uow: UnitOfWork, request: StockAdjustmentRequest) -> tuple[StockAdjustment, bool]:
    conn = uow.conn
    sku, warehouse, reason = request.sku, request.warehouse, request.reason
    _require_warehouse(conn, warehouse)
    # Lock first: a concurrent request with the same reference then waits, and sees it applied.
    stock = _locked_stock(conn, sku, warehouse, uow.now)
    previous = conn.execute(
        select(wms_ledger).where(
            wms_ledger.c.sku == sku,
            wms_ledger.c.warehouse == warehouse,
            wms_ledger.c.reason == reason.value,
            wms_ledger.c.reference == request.reference,
        )
    ).first()
    if previous is not None:
        applied = _applied_adjustment(conn, previous)
        if not _same_adjustment(request, applied):
            raise InvalidDocumentState(
                f"reference {request.reference!r} was already applied to {sku} in {warehouse} "
                f"as {reason.value} of {applied.delta:+d} (on-hand {applied.on_hand}); "
                "a different change needs a reference of its own"
            )
        return applied, False
    if reason is AdjustmentReason.CYCLE_COUNT:
        assert request.counted is not None
        delta = request.counted - stock.on_hand
    else:
        assert request.delta is not None
        delta = request.delta
    if stock.on_hand + delta < 0:
        raise InvalidDocumentState(
            f"{reason.value} of {-delta} units of {sku} in {warehouse} would take on-hand below "
            f"zero: {stock.on_hand} on hand"
        )
    stock.on_hand += delta
    _save_stock(conn, stock, uow.now)
    conn.execute(
        insert(wms_ledger).values(
            _ledger_entry(
                sku,
                warehouse,
                LedgerBucket.ON_HAND,
                delta,
                reason.value,
                request.reference,
                uow.now,
            )
        )
    )
    uow.emit(
        "wms.stock.adjusted",
        source=SOURCE,
        subject=f"stock/{sku}@{warehouse}",
        data={
            "sku": sku,
            "warehouse": warehouse,
            "reason": reason.value,
            "reference": request.reference,
            "delta": delta,
            "on_hand": stock.on_hand,
        },
    )
    adjustment = StockAdjustment(
        sku=sku,
        warehouse=warehouse,
        reason=reason,
        reference=request.reference,
        delta=delta,
        on_hand=stock.on_hand,
        at=uow.now,
    )
    return adjustment, True


def _applied_adjustment(conn: Connection, entry: Any) -> StockAdjustment:
    """An adjustment as it was applied: on-hand after it is the ledger sum up to its entry.

    Changes to one SKU in one warehouse hold its stock row's lock, so their ledger ids ascend in
    the order they were applied.
    """
    on_hand_after = conn.execute(
        select(func.coalesce(func.sum(wms_ledger.c.delta), 0)).where(
            wms_ledger.c.sku == entry.sku,
            wms_ledger.c.warehouse == entry.warehouse,
            wms_ledger.c.bucket == LedgerBucket.ON_HAND,
            wms_ledger.c.id <= entry.id,
        )
    ).scalar_one()
    return StockAdjustment(
        sku=entry.sku,
        warehouse=entry.warehouse,
        reason=AdjustmentReason(entry.reason),
        reference=entry.reference,
        delta=entry.delta,
        on_hand=int(on_hand_after),
        at=entry.at,
    )


def _same_adjustment(request: StockAdjustmentRequest, applied: StockAdjustment) -> bool:
    if request.reason is AdjustmentReason.CYCLE_COUNT:
        return request.counted == applied.on_hand
    return request.delta == applied.delta


# ---------------------------------------------------------------- fulfilment


def _request_fulfilment(uow: UnitOfWork, request: FulfilmentRequest) -> tuple[Fulfilment, bool]:
    conn = uow.conn
    existing = _fulfilment_by(conn, wms_fulfilments.c.order_reference == request.order_reference)
    if existing is not None:
        return existing, False
    _require_warehouse(conn, request.warehouse)
    fulfilment_id = next_document_number(conn, "wms_fulfilment", "FUL-")
    pk = conn.execute(
        insert(wms_fulfilments)
        .values(
            fulfilment_id=fulfilment_id,
            order_reference=request.order_reference,
            warehouse=request.warehouse,
            state=FulfilmentState.RELEASED.value,
            created_at=uow.now,
            completed_at=None,
        )
        .returning(wms_fulfilments.c.id)
    ).scalar_one()
    conn.execute(
        insert(wms_fulfilment_lines),
        [
            {
                "fulfilment_id": pk,
                "line_id": line.line_id,
                "position": position,
                "sku": line.sku,
                "quantity": line.quantity,
                "shipped_quantity": 0,
            }
            for position, line in enumerate(request.lines, start=1)
        ],
    )
    uow.emit(
        "wms.fulfilment.released",
        source=SOURCE,
        subject=f"fulfilment/{fulfilment_id}",
        data={
            "fulfilment_id": fulfilment_id,
            "order_reference": request.order_reference,
            "warehouse": request.warehouse,
            "lines": [line.model_dump(mode="json") for line in request.lines],
        },
    )
    created = _fulfilment_by(conn, wms_fulfilments.c.id == pk)
    assert created is not None
    return created, True


def _fulfilment_by(conn: Connection, condition: Any) -> Fulfilment | None:
    header = conn.execute(select(wms_fulfilments).where(condition)).first()
    if header is None:
        return None
    lines = list(
        conn.execute(
            select(wms_fulfilment_lines)
            .where(wms_fulfilment_lines.c.fulfilment_id == header.id)
            .order_by(wms_fulfilment_lines.c.position)
        )
    )
    position = {line.line_id: line.position for line in lines}
    packages = list(
        conn.execute(
            select(wms_packages)
            .where(wms_packages.c.fulfilment_id == header.id)
            .order_by(wms_packages.c.id)
        )
    )
    contents: dict[int, list[ShipmentLine]] = defaultdict(list)
    if packages:
        rows = conn.execute(
            select(wms_package_lines).where(
                wms_package_lines.c.package_id.in_([p.id for p in packages])
            )
        )
        for row in sorted(rows, key=lambda r: (position.get(r.line_id, 0), r.line_id)):
            contents[row.package_id].append(
                ShipmentLine(line_id=row.line_id, sku=row.sku, quantity=row.quantity)
            )
    return Fulfilment(
        fulfilment_id=header.fulfilment_id,
        order_reference=header.order_reference,
        warehouse=header.warehouse,
        state=FulfilmentState(header.state),
        lines=[
            FulfilmentLine(
                line_id=line.line_id,
                sku=line.sku,
                quantity=line.quantity,
                shipped_quantity=line.shipped_quantity,
            )
            for line in lines
        ],
        packages=[
            Package(
                package_reference=p.package_reference,
                carrier=p.carrier,
                tracking_number=p.tracking_number,
                lines=contents[p.id],
            )
            for p in packages
        ],
        completed_at=header.completed_at,
    )


# ---------------------------------------------------------------- shipments


def package_key(package_reference: str) -> str:
    """How a package is named in ledger references: itself, or a digest when it is long."""
    if len(package_reference) <= _MAX_PLAIN_PACKAGE_KEY:
        return package_reference
    return "sha256:" + hashlib.sha256(package_reference.encode()).hexdigest()


def shipment_reference(fulfilment_id: str, package_reference: str) -> str:
    """The ledger reference of a package's first confirmation: FUL-000001/PKG-1."""
    return f"{fulfilment_id}/{package_key(package_reference)}"


def correction_reference(fulfilment_id: str, package_reference: str, number: int) -> str:
    """The ledger reference of a package's n-th correction: FUL-000001#2/PKG-1.

    Fulfilment ids hold neither '#' nor '/', so the part before the first '/' names the
    fulfilment and the correction whatever the package reference holds.
    """
    return f"{fulfilment_id}#{number}/{package_key(package_reference)}"


_Contents = dict[str, tuple[str, int]]  # line_id -> (sku, quantity)


def _package_contents(fulfilment_id: str, package: Package, lines: dict[str, Any]) -> _Contents:
    contents: _Contents = {}
    reference = package.package_reference
    for item in package.lines:
        line = lines.get(item.line_id)
        if line is None:
            raise InvalidDocumentState(
                f"package {reference!r} ships line {item.line_id!r}, which fulfilment "
                f"{fulfilment_id} does not have"
            )
        if line.sku != item.sku:
            raise InvalidDocumentState(
                f"package {reference!r} ships {item.sku} on line {item.line_id!r}, which is "
                f"{line.sku} in fulfilment {fulfilment_id}"
            )
        if item.line_id in contents:
            raise InvalidDocumentState(f"package {reference!r} lists line {item.line_id!r} twice")
        contents[item.line_id] = (item.sku, item.quantity)
    return contents


def _per_sku(contents: _Contents) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for sku, quantity in contents.values():
        totals[sku] += quantity
    return totals


def _next_correction(conn: Connection, warehouse: str, fulfilment_id: str, key: str) -> int:
    references = conn.execute(
        select(wms_ledger.c.reference)
        .where(
            wms_ledger.c.warehouse == warehouse,
            wms_ledger.c.reason.in_([LedgerReason.SHIPMENT, LedgerReason.SHIPMENT_CORRECTION]),
            wms_ledger.c.reference.startswith(f"{fulfilment_id}#", autoescape=True),
        )
        .distinct()
    ).scalars()
    highest = 0
    for reference in references:
        head, _, tail = reference.partition("/")
        number = head.partition("#")[2]
        if tail == key and number.isdigit():
            highest = max(highest, int(number))
    return highest + 1


def _confirm_shipment(
    uow: UnitOfWork, fulfilment_id: str, confirmation: ShipmentConfirmation
) -> Fulfilment:
    conn, now = uow.conn, uow.now
    header = conn.execute(
        _for_update(
            conn, select(wms_fulfilments).where(wms_fulfilments.c.fulfilment_id == fulfilment_id)
        )
    ).first()
    if header is None:
        raise DocumentNotFound("fulfilment", fulfilment_id)
    if FulfilmentState(header.state) in COMPLETE_STATES:
        raise PackageAfterCompletion(fulfilment_id, confirmation.packages[0].package_reference)
    warehouse = header.warehouse
    lines = {
        row.line_id: row
        for row in conn.execute(
            select(wms_fulfilment_lines).where(wms_fulfilment_lines.c.fulfilment_id == header.id)
        )
    }
    shipped = {line_id: row.shipped_quantity for line_id, row in lines.items()}
    references = [p.package_reference for p in confirmation.packages]
    known = {
        row.package_reference: row
        for row in conn.execute(
            select(wms_packages).where(
                wms_packages.c.fulfilment_id == header.id,
                wms_packages.c.package_reference.in_(references),
            )
        )
    }
    known_contents: dict[int, _Contents] = defaultdict(dict)
    if known:
        for row in conn.execute(
            select(wms_package_lines).where(
                wms_package_lines.c.package_id.in_([p.id for p in known.values()])
            )
        ):
            known_contents[row.package_id][row.line_id] = (row.sku, row.quantity)

    stock_changes: dict[str, int] = defaultdict(int)
    ledger: list[dict[str, Any]] = []
    changed: list[str] = []
    corrected: list[str] = []
    for package in confirmation.packages:
        reference = package.package_reference
        new = _package_contents(fulfilment_id, package, lines)
        stored = known.get(reference)
        old: _Contents = {} if stored is None else known_contents[stored.id]
        if (
            stored is not None
            and stored.carrier == package.carrier
            and stored.tracking_number == package.tracking_number
            and old == new
        ):
            continue  # the same package again: nothing to correct
        for line_id in old.keys() | new.keys():
            shipped[line_id] += new.get(line_id, ("", 0))[1] - old.get(line_id, ("", 0))[1]
        old_skus, new_skus = _per_sku(old), _per_sku(new)
        if stored is None:
            for sku, quantity in sorted(new_skus.items()):
                ledger.append(
                    _ledger_entry(
                        sku,
                        warehouse,
                        LedgerBucket.ON_HAND,
                        -quantity,
                        LedgerReason.SHIPMENT,
                        shipment_reference(fulfilment_id, reference),
                        now,
                    )
                )
            package_pk = conn.execute(
                insert(wms_packages)
                .values(
                    fulfilment_id=header.id,
                    package_reference=reference,
                    carrier=package.carrier,
                    tracking_number=package.tracking_number,
                    created_at=now,
                    updated_at=now,
                )
                .returning(wms_packages.c.id)
            ).scalar_one()
        else:
            moved = sorted(
                sku
                for sku in old_skus.keys() | new_skus.keys()
                if old_skus.get(sku, 0) != new_skus.get(sku, 0)
            )
            if moved:
                number = _next_correction(conn, warehouse, fulfilment_id, package_key(reference))
                correction = correction_reference(fulfilment_id, reference, number)
                for sku in moved:
                    if old_skus.get(sku):
                        ledger.append(
                            _ledger_entry(
                                sku,
                                warehouse,
                                LedgerBucket.ON_HAND,
                                old_skus[sku],
                                LedgerReason.SHIPMENT_CORRECTION,
                                correction,
                                now,
                            )
                        )
                    if new_skus.get(sku):
                        ledger.append(
                            _ledger_entry(
                                sku,
                                warehouse,
                                LedgerBucket.ON_HAND,
                                -new_skus[sku],
                                LedgerReason.SHIPMENT,
                                correction,
                                now,
                            )
                        )
            package_pk = stored.id
            conn.execute(
                update(wms_packages)
                .where(wms_packages.c.id == package_pk)
                .values(
                    carrier=package.carrier,
                    tracking_number=package.tracking_number,
                    updated_at=now,
                )
            )
            conn.execute(
                delete(wms_package_lines).where(wms_package_lines.c.package_id == package_pk)
            )
            corrected.append(reference)
        conn.execute(
            insert(wms_package_lines),
            [
                {"package_id": package_pk, "line_id": line_id, "sku": sku, "quantity": quantity}
                for line_id, (sku, quantity) in new.items()
            ],
        )
        for sku in old_skus.keys() | new_skus.keys():
            stock_changes[sku] += old_skus.get(sku, 0) - new_skus.get(sku, 0)
        changed.append(reference)

    for line_id, quantity in shipped.items():
        ordered = lines[line_id].quantity
        if quantity > ordered:
            raise QuantityExceeded(
                f"line {line_id!r} of fulfilment {fulfilment_id} would ship {quantity} units; "
                f"{ordered} were ordered"
            )
    for sku in sorted(stock_changes):
        change = stock_changes[sku]
        if change == 0:
            continue
        stock = _locked_stock(conn, sku, warehouse, now)
        if stock.on_hand + change < 0:
            raise InvalidDocumentState(
                f"not enough {sku} on hand in {warehouse} to ship: {stock.on_hand} on hand, "
                f"{-change} to ship"
            )
        stock.on_hand += change
        _save_stock(conn, stock, now)
    if ledger:
        conn.execute(insert(wms_ledger), ledger)
    for line_id, quantity in shipped.items():
        if quantity != lines[line_id].shipped_quantity:
            conn.execute(
                update(wms_fulfilment_lines)
                .where(
                    wms_fulfilment_lines.c.fulfilment_id == header.id,
                    wms_fulfilment_lines.c.line_id == line_id,
                )
                .values(shipped_quantity=quantity)
            )

    all_shipped = all(quantity == lines[line_id].quantity for line_id, quantity in shipped.items())
    if confirmation.complete or all_shipped:
        state = FulfilmentState.SHIPPED
    elif any(shipped.values()):
        state = FulfilmentState.PARTIALLY_SHIPPED
    else:
        state = FulfilmentState.RELEASED
    state_changed = state.value != header.state
    if state_changed:
        conn.execute(
            update(wms_fulfilments)
            .where(wms_fulfilments.c.id == header.id)
            .values(
                state=state.value,
                completed_at=now if state in COMPLETE_STATES else None,
            )
        )
    if changed or state_changed:
        uow.emit(
            "wms.shipment.confirmed",
            source=SOURCE,
            subject=f"fulfilment/{fulfilment_id}",
            data={
                "fulfilment_id": fulfilment_id,
                "order_reference": header.order_reference,
                "warehouse": warehouse,
                "state": state.value,
                "complete": confirmation.complete,
                "packages": [p.model_dump(mode="json") for p in confirmation.packages],
                "corrected_packages": list(corrected),
            },
        )
    fulfilment = _fulfilment_by(conn, wms_fulfilments.c.id == header.id)
    assert fulfilment is not None
    return fulfilment


# ---------------------------------------------------------------- returns


def _receipt_by_rma(conn: Connection, rma_reference: str, *, lock: bool = False) -> Any:
    query = select(wms_return_receipts).where(wms_return_receipts.c.rma_reference == rma_reference)
    return conn.execute(_for_update(conn, query) if lock else query).first()


def _row_to_receipt(row: Any) -> ReturnReceipt:
    return ReturnReceipt(
        receipt_id=row.receipt_id,
        rma_reference=row.rma_reference,
        order_reference=row.order_reference,
        warehouse=row.warehouse,
        lines=[ReturnReceiptLineIn.model_validate(line) for line in row.lines],
        received_at=row.received_at,
    )


def _receive_return(uow: UnitOfWork, request: ReturnReceiptRequest) -> tuple[ReturnReceipt, bool]:
    conn = uow.conn
    existing = _receipt_by_rma(conn, request.rma_reference)
    if existing is not None:
        return _row_to_receipt(existing), False
    _require_warehouse(conn, request.warehouse)
    receipt_id = next_document_number(conn, "wms_return_receipt", "RCV-")
    lines = [line.model_dump(mode="json") for line in request.lines]
    conn.execute(
        insert(wms_return_receipts).values(
            receipt_id=receipt_id,
            rma_reference=request.rma_reference,
            order_reference=request.order_reference,
            warehouse=request.warehouse,
            lines=lines,
            received_at=uow.now,
        )
    )
    uow.emit(
        "wms.return.received",
        source=SOURCE,
        subject=f"return/{request.rma_reference}",
        data={
            "receipt_id": receipt_id,
            "rma_reference": request.rma_reference,
            "order_reference": request.order_reference,
            "warehouse": request.warehouse,
            "lines": list(lines),
        },
    )
    receipt = ReturnReceipt(
        receipt_id=receipt_id,
        rma_reference=request.rma_reference,
        order_reference=request.order_reference,
        warehouse=request.warehouse,
        lines=list(request.lines),
        received_at=uow.now,
    )
    return receipt, True


def _canonical_lines(lines: Iterable[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(line, sort_keys=True) for line in lines)


def _record_inspection(
    uow: UnitOfWork, rma_reference: str, request: InspectionRequest
) -> tuple[InspectionRecord, bool]:
    conn, now = uow.conn, uow.now
    receipt = _receipt_by_rma(conn, rma_reference, lock=True)
    if receipt is None:
        raise DocumentNotFound("return receipt", rma_reference)
    lines = [line.model_dump(mode="json") for line in request.lines]
    stored = conn.execute(
        select(wms_inspections).where(wms_inspections.c.rma_reference == rma_reference)
    ).first()
    if stored is not None:
        if _canonical_lines(stored.lines) != _canonical_lines(lines):
            raise InvalidDocumentState(
                f"return {rma_reference} was already inspected, with other results; "
                "an inspection is recorded once"
            )
        record = InspectionRecord(
            rma_reference=stored.rma_reference,
            warehouse=stored.warehouse,
            lines=[InspectionLine.model_validate(line) for line in stored.lines],
            inspected_at=stored.inspected_at,
        )
        return record, False

    received = {line["line_id"]: line for line in receipt.lines}
    inspected: dict[str, int] = defaultdict(int)
    for line in request.lines:
        receipt_line = received.get(line.line_id)
        if receipt_line is None:
            raise InvalidDocumentState(
                f"return {rma_reference} received nothing of line {line.line_id!r}"
            )
        if receipt_line["sku"] != line.sku:
            raise InvalidDocumentState(
                f"line {line.line_id!r} of return {rma_reference} received "
                f"{receipt_line['sku']}, the inspection names {line.sku}"
            )
        inspected[line.line_id] += line.quantity
    for line_id, quantity in inspected.items():
        if quantity > received[line_id]["quantity"]:
            raise QuantityExceeded(
                f"line {line_id!r} of return {rma_reference}: {quantity} units inspected, "
                f"{received[line_id]['quantity']} received"
            )

    warehouse = receipt.warehouse
    effects: dict[tuple[str, Disposition], int] = defaultdict(int)
    for line in request.lines:
        effects[(line.sku, line.disposition)] += line.quantity
    ledger: list[dict[str, Any]] = []
    for sku, disposition in sorted(effects):
        quantity = effects[(sku, disposition)]
        bucket, reason = _DISPOSITION_LEDGER[disposition]
        if disposition is not Disposition.SCRAP:
            stock = _locked_stock(conn, sku, warehouse, now)
            if disposition is Disposition.RESTOCK:
                stock.on_hand += quantity
            else:
                stock.quarantined += quantity
            _save_stock(conn, stock, now)
        ledger.append(_ledger_entry(sku, warehouse, bucket, quantity, reason, rma_reference, now))
    conn.execute(insert(wms_ledger), ledger)
    conn.execute(
        insert(wms_inspections).values(
            rma_reference=rma_reference, warehouse=warehouse, lines=lines, inspected_at=now
        )
    )
    uow.emit(
        "wms.return.inspected",
        source=SOURCE,
        subject=f"return/{rma_reference}",
        data={
            "rma_reference": rma_reference,
            "receipt_id": receipt.receipt_id,
            "order_reference": receipt.order_reference,
            "warehouse": warehouse,
            "lines": list(lines),
        },
    )
    record = InspectionRecord(
        rma_reference=rma_reference,
        warehouse=warehouse,
        lines=list(request.lines),
        inspected_at=now,
    )
    return record, True
