"""Customers (parties) of the embedded ERP: one party per e-mail address, else one per order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, insert, select

from contracts import Address, Customer
from gateway_infra.unit_of_work import UnitOfWork
from system_api.erp.numbering import next_document_number
from system_api.tables import erp_customers


def resolve_customer(uow: UnitOfWork, customer: Customer) -> str:
    """The party id for a buyer: the known party with this e-mail, or a new one."""
    conn = uow.conn
    if customer.email:
        known = conn.execute(
            select(erp_customers.c.customer_id).where(erp_customers.c.email == customer.email)
        ).scalar_one_or_none()
        if known is not None:
            return str(known)
    customer_id = next_document_number(conn, "customer", "CUS-")
    conn.execute(
        insert(erp_customers).values(
            customer_id=customer_id,
            name=customer.name,
            email=customer.email,
            phone=customer.phone,
            billing_address=_address(customer.billing_address),
            shipping_address=_address(customer.shipping_address),
            created_at=uow.now,
        )
    )
    return customer_id


def customer_by_id(conn: Connection, customer_id: str) -> Customer | None:
    row = conn.execute(
        select(erp_customers).where(erp_customers.c.customer_id == customer_id)
    ).first()
    return None if row is None else _customer(row)


def _customer(row: Row[Any]) -> Customer:
    return Customer(
        customer_id=row.customer_id,
        name=row.name,
        email=row.email,
        phone=row.phone,
        billing_address=Address.model_validate(row.billing_address)
        if row.billing_address
        else None,
        shipping_address=(
            Address.model_validate(row.shipping_address) if row.shipping_address else None
        ),
    )


def _address(address: Address | None) -> dict[str, Any] | None:
    return None if address is None else address.model_dump(mode="json", exclude_none=True)
