"""SQL of releases, shipped packages and invoices, run inside the caller's unit of work."""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, delete, select, update

from contracts import CreditNote, Money, Package, Shipment
from contracts.erp import Invoice
from gateway_infra.database import dialect_insert
from gateway_infra.unit_of_work import UnitOfWork
from process_api.fulfilment.models import (
    DocumentKind,
    InvoiceLineView,
    InvoiceView,
    PackageState,
    package_lines,
    to_package,
)
from process_api.tables import fulfilments, invoices, shipment_packages

__all__ = [
    "FulfilmentRow",
    "StoredPackage",
    "confirm_package",
    "drop_pending",
    "drop_release_intent",
    "fulfilment_of",
    "insert_packages",
    "invoiced_quantities",
    "invoiced_total",
    "invoices_of",
    "new_shipment_id",
    "packages_of",
    "record_credit_note",
    "record_invoice",
    "record_release_intent",
    "refunded_total",
    "set_released",
    "shipments_of",
    "shipped_quantities",
]


def new_shipment_id() -> str:
    return "shp_" + secrets.token_hex(10)


# ---------------------------------------------------------------- releases


@dataclass(frozen=True)
class FulfilmentRow:
    order_id: str
    warehouse: str
    fulfilment_id: str | None
    requested_by: str
    requested_at: datetime
    released_at: datetime | None


def fulfilment_of(conn: Connection, order_id: str) -> FulfilmentRow | None:
    row = conn.execute(select(fulfilments).where(fulfilments.c.order_id == order_id)).first()
    if row is None:
        return None
    return FulfilmentRow(
        order_id=row.order_id,
        warehouse=row.warehouse,
        fulfilment_id=row.fulfilment_id,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        released_at=row.released_at,
    )


def record_release_intent(uow: UnitOfWork, order_id: str, warehouse: str, actor: str) -> bool:
    """Record that the order is to be released (once); false when it was recorded before."""
    result = uow.conn.execute(
        dialect_insert(uow.conn, fulfilments)
        .values(
            order_id=order_id,
            warehouse=warehouse,
            fulfilment_id=None,
            requested_by=actor,
            requested_at=uow.now,
            released_at=None,
        )
        .on_conflict_do_nothing(index_elements=[fulfilments.c.order_id])
    )
    return bool(result.rowcount)


def drop_release_intent(uow: UnitOfWork, order_id: str) -> bool:
    """Forget a release the WMS has not answered yet (the order was cancelled, or refused)."""
    result = uow.conn.execute(
        delete(fulfilments).where(
            fulfilments.c.order_id == order_id, fulfilments.c.fulfilment_id.is_(None)
        )
    )
    return bool(result.rowcount)


def set_released(uow: UnitOfWork, order_id: str, fulfilment_id: str) -> bool:
    """Store the WMS's fulfilment id; false when it was stored before."""
    result = uow.conn.execute(
        update(fulfilments)
        .where(fulfilments.c.order_id == order_id, fulfilments.c.fulfilment_id.is_(None))
        .values(fulfilment_id=fulfilment_id, released_at=uow.now)
    )
    return bool(result.rowcount)


# ---------------------------------------------------------------- packages


@dataclass(frozen=True)
class StoredPackage:
    """A package as the gateway recorded it for an order."""

    package: Package
    shipment_id: str
    warehouse: str
    shipped_at: datetime
    state: PackageState

    @property
    def reference(self) -> str:
        return self.package.package_reference


def packages_of(
    conn: Connection, order_id: str, state: PackageState | None = None
) -> list[StoredPackage]:
    """The order's packages in the order they were reported."""
    query = (
        select(shipment_packages)
        .where(shipment_packages.c.order_id == order_id)
        .order_by(shipment_packages.c.id)
    )
    if state is not None:
        query = query.where(shipment_packages.c.state == state.value)
    return [
        StoredPackage(
            package=to_package(row.package_reference, row.carrier, row.tracking_number, row.lines),
            shipment_id=row.shipment_id,
            warehouse=row.warehouse,
            shipped_at=row.shipped_at,
            state=PackageState(row.state),
        )
        for row in conn.execute(query)
    ]


def insert_packages(
    uow: UnitOfWork,
    order_id: str,
    *,
    shipment_id: str,
    warehouse: str,
    shipped_at: datetime,
    packages: Sequence[Package],
    actor: str,
) -> None:
    """Record reported packages as pending (the WMS has not confirmed them yet)."""
    if not packages:
        return
    uow.conn.execute(
        shipment_packages.insert(),
        [
            {
                "order_id": order_id,
                "package_reference": package.package_reference,
                "shipment_id": shipment_id,
                "warehouse": warehouse,
                "carrier": package.carrier,
                "tracking_number": package.tracking_number,
                "lines": package_lines(package),
                "shipped_at": shipped_at,
                "state": PackageState.PENDING.value,
                "recorded_by": actor,
                "created_at": uow.now,
                "confirmed_at": None,
            }
            for package in packages
        ],
    )


def confirm_package(uow: UnitOfWork, order_id: str, reference: str) -> bool:
    """Mark a pending package confirmed; false when it was not pending (confirmed by another)."""
    result = uow.conn.execute(
        update(shipment_packages)
        .where(
            shipment_packages.c.order_id == order_id,
            shipment_packages.c.package_reference == reference,
            shipment_packages.c.state == PackageState.PENDING.value,
        )
        .values(state=PackageState.CONFIRMED.value, confirmed_at=uow.now)
    )
    return bool(result.rowcount)


def drop_pending(uow: UnitOfWork, order_id: str, references: Iterable[str] | None = None) -> int:
    """Forget pending packages the WMS refused (all of the order's when references is None)."""
    query = delete(shipment_packages).where(
        shipment_packages.c.order_id == order_id,
        shipment_packages.c.state == PackageState.PENDING.value,
    )
    if references is not None:
        query = query.where(shipment_packages.c.package_reference.in_(list(references)))
    return int(uow.conn.execute(query).rowcount)


def shipped_quantities(packages: Iterable[StoredPackage]) -> dict[str, int]:
    """Units per order line in these packages."""
    totals: dict[str, int] = defaultdict(int)
    for stored in packages:
        for line in stored.package.lines:
            totals[line.line_id] += line.quantity
    return dict(totals)


def shipments_of(conn: Connection, order_id: str) -> list[Shipment]:
    """The order's shipments confirmed by the WMS, each with its packages, oldest first."""
    grouped: dict[str, list[StoredPackage]] = {}
    for stored in packages_of(conn, order_id, PackageState.CONFIRMED):
        grouped.setdefault(stored.shipment_id, []).append(stored)
    return [
        Shipment(
            shipment_id=shipment_id,
            order_id=order_id,
            warehouse=group[0].warehouse,
            packages=[stored.package for stored in group],
            shipped_at=min(stored.shipped_at for stored in group),
        )
        for shipment_id, group in grouped.items()
    ]


# ---------------------------------------------------------------- invoices and credit notes


def record_invoice(uow: UnitOfWork, order_id: str, invoice: Invoice) -> bool:
    """Record an ERP invoice of the order once (by reference); false when known already."""
    result = uow.conn.execute(
        dialect_insert(uow.conn, invoices)
        .values(
            order_id=order_id,
            kind=DocumentKind.INVOICE.value,
            reference=invoice.reference,
            document_id=invoice.invoice_id,
            currency=invoice.currency,
            total=invoice.total.amount,
            lines=[line.model_dump(mode="json") for line in invoice.lines],
            posted_at=invoice.posted_at,
            recorded_at=uow.now,
        )
        .on_conflict_do_nothing(index_elements=[invoices.c.kind, invoices.c.reference])
    )
    return bool(result.rowcount)


def _documents(conn: Connection, order_id: str, kind: DocumentKind | None) -> list[Any]:
    query = select(invoices).where(invoices.c.order_id == order_id).order_by(invoices.c.id)
    if kind is not None:
        query = query.where(invoices.c.kind == kind.value)
    return list(conn.execute(query))


def invoices_of(conn: Connection, order_id: str) -> list[InvoiceView]:
    """The order's invoices, oldest first."""
    return [
        InvoiceView(
            document_id=row.document_id,
            kind=DocumentKind(row.kind),
            reference=row.reference,
            total=Money(amount=row.total, currency=row.currency),
            lines=[InvoiceLineView.model_validate(line) for line in row.lines],
            posted_at=row.posted_at,
        )
        for row in _documents(conn, order_id, DocumentKind.INVOICE)
    ]


def record_credit_note(
    uow: UnitOfWork, credit_note: CreditNote, *, reference: str, posted_at: datetime
) -> bool:
    """Record an ERP credit note of an order once (by reference); what refunded_total counts."""
    if credit_note.credit_note_id is None:
        raise ValueError("a credit note is recorded once the ERP has numbered it")
    result = uow.conn.execute(
        dialect_insert(uow.conn, invoices)
        .values(
            order_id=credit_note.order_id,
            kind=DocumentKind.CREDIT_NOTE.value,
            reference=reference,
            document_id=credit_note.credit_note_id,
            currency=credit_note.total.currency,
            total=credit_note.total.amount,
            lines=[line.model_dump(mode="json") for line in credit_note.lines],
            posted_at=posted_at,
            recorded_at=uow.now,
        )
        .on_conflict_do_nothing(index_elements=[invoices.c.kind, invoices.c.reference])
    )
    return bool(result.rowcount)


def invoiced_quantities(conn: Connection, order_id: str) -> dict[str, int]:
    """Units invoiced so far per order line."""
    totals: dict[str, int] = defaultdict(int)
    for row in _documents(conn, order_id, DocumentKind.INVOICE):
        for line in row.lines:
            totals[str(line["line_id"])] += int(line["quantity"])
    return dict(totals)


def _total(conn: Connection, order_id: str, kind: DocumentKind) -> Decimal:
    # Summed here, not in SQL: SQLite keeps amounts as text and would add them as floats.
    return sum((Decimal(row.total) for row in _documents(conn, order_id, kind)), Decimal(0))


def invoiced_total(conn: Connection, order_id: str) -> Decimal:
    """What the ERP invoiced for the order, in the order's currency."""
    return _total(conn, order_id, DocumentKind.INVOICE)


def refunded_total(conn: Connection, order_id: str) -> Decimal:
    """What was credited to the customer for the order (credit notes of its returns)."""
    return _total(conn, order_id, DocumentKind.CREDIT_NOTE)
