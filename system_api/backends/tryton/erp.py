"""ErpPort over Tryton 8.x: products, parties, sales, invoices and credit notes by JSON-RPC.

Validation of order lines is the embedded ERP's (unknown SKU, inactive SKU, currency, price
outside a tolerance of the list price); a rejected order leaves nothing in Tryton.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from decimal import Decimal
from typing import Any

from contracts import (
    Address,
    CreditNote,
    CreditNoteLine,
    Customer,
    LineRejection,
    Money,
    OrderLine,
    Product,
    ProductStatus,
    RejectionReason,
)
from contracts.erp import (
    CreditNoteRequest,
    Invoice,
    InvoiceLine,
    InvoiceRequest,
    SalesOrder,
    SalesOrderDecision,
    SalesOrderRequest,
    SalesOrderState,
)
from system_api.backends.tryton.codec import utc
from system_api.backends.tryton.mapping import (
    CONFIRMED_SALE_STATES,
    OPEN_SHIPMENT_STATES,
    SALE_STATES,
    line_id_of,
    line_note,
    origin_id,
    quantity,
    split_amount,
)
from system_api.backends.tryton.rpc import BACKEND, TrytonClient, TrytonError
from system_api.errors import (
    BackendRejected,
    DocumentNotFound,
    InvalidDocumentState,
    QuantityExceeded,
)

__all__ = ["TrytonErp", "tryton_errors"]

PRODUCT_FIELDS = ["code", "name", "active", "salable", "list_price_used", "sale_uom"]
SALE_FIELDS = [
    "number",
    "reference",
    "description",
    "state",
    "currency.code",
    "party",
    "party.code",
    "create_date",
    "lines",
    "total_amount",
    "invoices",
    "shipments",
    "invoice_address",
    "shipment_address",
    "payment_term",
    "currency",
    "company",
    "warehouse",
]
SALE_LINE_FIELDS = ["note", "sequence", "product", "product.code", "quantity", "unit", "unit_price"]
INVOICE_FIELDS = [
    "number",
    "reference",
    "description",
    "state",
    "currency.code",
    "total_amount",
    "create_date",
    "lines",
]
INVOICE_LINE_FIELDS = ["invoice", "origin", "quantity", "unit_price", "amount", "product", "taxes"]
WALK_IN_CUSTOMER = "Gateway walk-in customer"
_STATE_ERRORS = ("You can not call", "You cannot call", "must be cancelled", "is not in state")


@contextlib.asynccontextmanager
async def tryton_errors() -> AsyncIterator[None]:
    """What Tryton answered, as the port's errors: a button refused in the record's state is
    InvalidDocumentState; any other refusal BackendRejected with Tryton's own message."""
    try:
        yield
    except TrytonError as exc:
        message = exc.message
        if exc.is_user_error and any(text in message for text in _STATE_ERRORS):
            raise InvalidDocumentState(f"Tryton: {message}") from exc
        if exc.kind == "ConcurrencyException":
            raise InvalidDocumentState(f"Tryton: {message}") from exc
        raise BackendRejected(BACKEND, message) from exc


class TrytonErp:
    """ErpPort over a Tryton database (see docs/decisions/0004-tryton-adapter.md)."""

    name = "tryton"

    def __init__(
        self,
        client: TrytonClient,
        *,
        price_tolerance: Decimal = Decimal("0.01"),
        tax_class: str = "standard",
    ) -> None:
        self.client = client
        self.price_tolerance = price_tolerance
        self.tax_class = tax_class

    # ------------------------------------------------------------------ reference data

    async def company(self) -> dict[str, Any]:
        """The user's company with its currency (id and code)."""

        async def load() -> dict[str, Any]:
            await self.client.search("company.company", [], limit=1)  # logs in: context known
            company_id = self.client.context.get("company")
            if not company_id:
                raise BackendRejected(BACKEND, "the Tryton user has no company")
            (company,) = await self.client.read(
                "company.company", [company_id], ["currency", "currency.code"]
            )
            return {
                "id": company_id,
                "currency": company["currency"],
                "currency_code": company["currency."]["code"],
            }

        return await self.client.cached("company", load)

    async def _accounting(self) -> dict[str, Any]:
        async def load() -> dict[str, Any]:
            journals = await self.client.search(
                "account.journal", [("type", "=", "revenue")], limit=1
            )
            config = await self.client.read(
                "account.configuration", [1], ["default_account_receivable"]
            )
            terms = await self.client.search("account.invoice.payment_term", [], limit=1)
            if not journals or not config or not config[0].get("default_account_receivable"):
                raise BackendRejected(
                    BACKEND, "Tryton has no revenue journal or default receivable account"
                )
            return {
                "journal": journals[0],
                "receivable": config[0]["default_account_receivable"],
                "payment_term": terms[0] if terms else None,
            }

        return await self.client.cached("accounting", load)

    # ------------------------------------------------------------------ products

    async def get_product(self, sku: str) -> Product | None:
        async with tryton_errors():
            products = await self._products([sku])
        return products.get(sku)

    async def list_products(self, *, after: str | None = None, limit: int = 100) -> list[Product]:
        domain: list[Any] = [("code", "!=", None), ("active", "in", [True, False])]
        if after is not None:
            domain.append(("code", ">", after))
        async with tryton_errors():
            currency = (await self.company())["currency_code"]
            records = await self.client.search_read(
                "product.product",
                domain,
                PRODUCT_FIELDS,
                order=[("code", "ASC"), ("id", "ASC")],
                limit=limit,
            )
        return [self._product(record, currency) for record in records]

    async def _products(self, skus: list[str]) -> dict[str, Product]:
        records = await self._product_records(skus)
        currency = (await self.company())["currency_code"]
        return {sku: self._product(record, currency) for sku, record in records.items()}

    async def _product_records(self, skus: list[str]) -> dict[str, dict[str, Any]]:
        """Products by code, active or not; an active one wins over an archived namesake."""
        records = await self.client.search_read(
            "product.product",
            [("code", "in", sorted(set(skus))), ("active", "in", [True, False])],
            PRODUCT_FIELDS,
            order=[("id", "ASC")],
        )
        found: dict[str, dict[str, Any]] = {}
        for record in records:
            known = found.get(record["code"])
            if known is None or (not known["active"] and record["active"]):
                found[record["code"]] = record
        return found

    def _product(self, record: dict[str, Any], currency: str) -> Product:
        active = bool(record["active"]) and bool(record["salable"])
        return Product(
            sku=record["code"],
            name=record["name"] or record["code"],
            status=ProductStatus.ACTIVE if active else ProductStatus.INACTIVE,
            tax_class=self.tax_class,
            list_price=Money(amount=Decimal(record["list_price_used"] or 0), currency=currency),
        )

    # ------------------------------------------------------------------ sales orders

    async def create_sales_order(self, request: SalesOrderRequest) -> SalesOrderDecision:
        async with self.client.lock(f"sale:{request.reference}"), tryton_errors():
            existing = await self._sale_by_reference(request.reference)
            if existing is not None:
                if existing["state"] == "draft":  # created, but the quote never ran
                    await self.client.button("sale.sale", "quote", [existing["id"]])
                    existing = await self._sale(existing["id"])
                order = await self._sales_order(existing)
                return SalesOrderDecision(accepted=True, sales_order=order)
            company = await self.company()
            products = await self._product_records([line.sku for line in request.lines])
            rejections = self._check_lines(request, products, company["currency_code"])
            if rejections:
                return SalesOrderDecision(accepted=False, rejections=rejections)
            party = await self._party_for(request)
            values: dict[str, Any] = {
                "company": company["id"],
                "party": party["id"],
                "reference": request.reference,
                "description": request.channel,
                "currency": company["currency"],
                "invoice_address": party["invoice_address"],
                "shipment_address": party["shipment_address"],
                # The gateway posts invoices for the quantities it is asked to (post_invoice):
                # Tryton must not invoice on its own as well.
                "invoice_method": "manual",
                "lines": [
                    [
                        "create",
                        [
                            {
                                "type": "line",
                                "sequence": position,
                                "product": products[line.sku]["id"],
                                "quantity": float(line.quantity),
                                "unit": products[line.sku]["sale_uom"],
                                "unit_price": line.unit_price.amount,
                                "note": line_note(line.line_id),
                            }
                            for position, line in enumerate(request.lines, start=1)
                        ],
                    ]
                ],
            }
            if party.get("payment_term"):
                values["payment_term"] = party["payment_term"]
            (sale_id,) = await self.client.create("sale.sale", [values])
            try:
                await self.client.button("sale.sale", "quote", [sale_id])
            except TrytonError:
                # Nothing half-made stays in Tryton: the draft goes, Tryton's message is kept.
                with contextlib.suppress(TrytonError):
                    await self.client.call("sale.sale", "delete", [sale_id])
                raise
            order = await self._sales_order(await self._sale(sale_id))
            return SalesOrderDecision(accepted=True, sales_order=order)

    def _check_lines(
        self,
        request: SalesOrderRequest,
        products: dict[str, dict[str, Any]],
        currency: str,
    ) -> list[LineRejection]:
        rejections: list[LineRejection] = []
        for line in request.lines:

            def reject(reason: RejectionReason, detail: str, line: OrderLine = line) -> None:
                rejections.append(LineRejection(line_id=line.line_id, reason=reason, detail=detail))

            product = products.get(line.sku)
            if product is None:
                reject(RejectionReason.UNKNOWN_SKU, f"SKU {line.sku} is not in the item master")
                continue
            if not product["active"] or not product["salable"]:
                state = "inactive" if not product["active"] else "not salable"
                reject(RejectionReason.INACTIVE_SKU, f"SKU {line.sku} is {state}")
                continue
            if line.unit_price.currency != currency or request.currency != currency:
                reject(
                    RejectionReason.CURRENCY_MISMATCH,
                    f"price list is in {currency}, line is in {line.unit_price.currency} "
                    f"(order in {request.currency})",
                )
                continue
            list_price = Decimal(product["list_price_used"] or 0)
            difference = abs(line.unit_price.amount - list_price)
            if difference > self.price_tolerance:
                reject(
                    RejectionReason.PRICE_MISMATCH,
                    f"unit price {line.unit_price.amount} differs from list price "
                    f"{list_price.normalize():f} by more than {self.price_tolerance}",
                )
        return rejections

    async def get_sales_order(self, sales_order_id: str) -> SalesOrder | None:
        async with tryton_errors():
            sale = await self._sale_by_number(sales_order_id)
            return None if sale is None else await self._sales_order(sale)

    async def confirm_sales_order(self, sales_order_id: str) -> SalesOrder:
        async with self.client.lock(f"sale-number:{sales_order_id}"), tryton_errors():
            sale = await self._require_sale(sales_order_id)
            if sale["state"] == "cancelled" or await self._cancelled_after_confirm(sale):
                raise InvalidDocumentState(f"sales order {sales_order_id} is cancelled")
            if sale["state"] not in CONFIRMED_SALE_STATES:
                try:
                    if sale["state"] == "draft":
                        await self.client.button("sale.sale", "quote", [sale["id"]])
                    await self.client.button("sale.sale", "confirm", [sale["id"]])
                except TrytonError:
                    sale = await self._sale(sale["id"])
                    if sale["state"] not in CONFIRMED_SALE_STATES:
                        raise
                sale = await self._sale(sale["id"])
            return await self._sales_order(sale)

    async def cancel_sales_order(self, sales_order_id: str) -> SalesOrder:
        async with self.client.lock(f"sale-number:{sales_order_id}"), tryton_errors():
            sale = await self._require_sale(sales_order_id)
            if sale["state"] in ("draft", "quotation"):
                await self.client.button("sale.sale", "cancel", [sale["id"]])
            elif sale["state"] in CONFIRMED_SALE_STATES and not await self._cancelled_after_confirm(
                sale
            ):
                await self._cancel_confirmed(sale)
            return await self._sales_order(await self._sale(sale["id"]))

    async def _cancel_confirmed(self, sale: dict[str, Any]) -> None:
        """Tryton cannot cancel a sale it processes: cancel its shipments and ignore their
        moves (the sale then ends 'done' with nothing shipped, read back as cancelled)."""
        number = sale["number"]
        if await self._invoice_lines_of_sale(sale):
            raise InvalidDocumentState(f"sales order {number} is invoiced")
        shipments = await self.client.read("stock.shipment.out", sale["shipments"], ["state"])
        if any(shipment["state"] == "done" for shipment in shipments):
            raise InvalidDocumentState(f"sales order {number} has shipped goods")
        open_ids = [s["id"] for s in shipments if s["state"] in OPEN_SHIPMENT_STATES]
        if open_ids:
            await self.client.button("stock.shipment.out", "cancel", open_ids)
        await ignore_shipment_exceptions(self.client, sale["id"])

    async def _cancelled_after_confirm(self, sale: dict[str, Any]) -> bool:
        """A processed sale whose every move was cancelled and that was never invoiced."""
        if sale["state"] not in ("processing", "done") or sale.get("invoices"):
            return False
        moves = await self.client.search_read("stock.move", [("sale", "=", sale["id"])], ["state"])
        return bool(moves) and all(move["state"] == "cancelled" for move in moves)

    async def _sale_by_reference(self, reference: str) -> dict[str, Any] | None:
        records = await self.client.search_read(
            "sale.sale", [("reference", "=", reference)], SALE_FIELDS, order=[("id", "ASC")]
        )
        return records[0] if records else None

    async def _sale_by_number(self, number: str) -> dict[str, Any] | None:
        records = await self.client.search_read(
            "sale.sale", [("number", "=", number)], SALE_FIELDS, order=[("id", "ASC")]
        )
        return records[0] if records else None

    async def _require_sale(self, number: str) -> dict[str, Any]:
        sale = await self._sale_by_number(number)
        if sale is None:
            raise DocumentNotFound("sales order", number)
        return sale

    async def _sale(self, sale_id: int) -> dict[str, Any]:
        (sale,) = await self.client.read("sale.sale", [sale_id], SALE_FIELDS)
        return sale

    async def sale_lines(self, sale: dict[str, Any]) -> list[dict[str, Any]]:
        lines = await self.client.read("sale.line", sale["lines"], SALE_LINE_FIELDS)
        return [line for line in lines if line.get("product")]

    async def _sales_order(self, sale: dict[str, Any]) -> SalesOrder:
        currency = sale["currency."]["code"]
        lines = await self.sale_lines(sale)
        walk_in = await self._walk_in_party_id()
        state = SALE_STATES[sale["state"]]
        if state is SalesOrderState.CONFIRMED and await self._cancelled_after_confirm(sale):
            state = SalesOrderState.CANCELLED
        return SalesOrder(
            sales_order_id=sale["number"] or f"draft-{sale['id']}",
            reference=sale["reference"],
            channel=sale.get("description") or "tryton",
            state=state,
            currency=currency,
            customer_id=None if sale["party"] == walk_in else sale["party."]["code"],
            lines=[
                OrderLine(
                    line_id=line_id_of(line),
                    sku=line["product."]["code"],
                    quantity=quantity(line["quantity"]),
                    unit_price=Money(amount=Decimal(line["unit_price"]), currency=currency),
                )
                for line in lines
            ],
            total=Money(amount=Decimal(sale["total_amount"]), currency=currency),
            created_at=utc(sale["create_date"]),
        )

    # ------------------------------------------------------------------ customers

    async def _walk_in_party_id(self) -> int | None:
        async def load() -> int | None:
            ids = await self.client.search("party.party", [("name", "=", WALK_IN_CUSTOMER)])
            return ids[0] if ids else None

        return await self.client.cached("walk-in", load)

    async def _party_for(self, request: SalesOrderRequest) -> dict[str, Any]:
        """The party of the buyer: the one with this e-mail, else a new one (the walk-in
        party when the order names no buyer), with its invoice and delivery addresses."""
        customer = request.customer
        party_id: int | None = None
        if customer is None:
            party_id = await self._walk_in_party_id()
            if party_id is None:
                (party_id,) = await self.client.create(
                    "party.party",
                    [{"name": WALK_IN_CUSTOMER, "addresses": [["create", [{}]]]}],
                )
                self.client._cache.pop("walk-in", None)
        elif customer.email:
            async with self.client.lock(f"party:{customer.email}"):
                known = await self.client.search(
                    "party.party",
                    [
                        (
                            "contact_mechanisms",
                            "where",
                            [("type", "=", "email"), ("value", "=", customer.email)],
                        )
                    ],
                    order=[("id", "ASC")],
                    limit=1,
                )
                party_id = known[0] if known else await self._create_party(customer)
        else:
            party_id = await self._create_party(customer)
        (party,) = await self.client.read(
            "party.party", [party_id], ["addresses", "customer_payment_term"]
        )
        addresses = await self.client.read(
            "party.address", party["addresses"], ["invoice", "delivery"]
        )
        if not addresses:
            (address_id,) = await self.client.create("party.address", [{"party": party_id}])
            addresses = [{"id": address_id, "invoice": False, "delivery": False}]
        invoice = next((a["id"] for a in addresses if a["invoice"]), addresses[0]["id"])
        delivery = next((a["id"] for a in addresses if a["delivery"]), addresses[0]["id"])
        accounting = await self._accounting()
        return {
            "id": party_id,
            "invoice_address": invoice,
            "shipment_address": delivery,
            "payment_term": party.get("customer_payment_term") or accounting["payment_term"],
        }

    async def _create_party(self, customer: Customer) -> int:
        mechanisms = []
        if customer.email:
            mechanisms.append({"type": "email", "value": customer.email})
        if customer.phone:
            mechanisms.append({"type": "phone", "value": customer.phone})
        addresses: list[dict[str, Any]] = []
        billing, shipping = customer.billing_address, customer.shipping_address
        if billing is not None:
            addresses.append(
                {
                    **await self._address_values(billing),
                    "invoice": True,
                    "delivery": shipping is None,
                }
            )
        if shipping is not None and shipping != billing:
            addresses.append(
                {
                    **await self._address_values(shipping),
                    "delivery": True,
                    "invoice": billing is None,
                }
            )
        elif shipping is not None and addresses:
            addresses[0]["delivery"] = True
        if not addresses:
            addresses.append({"party_name": customer.name})
        (party_id,) = await self.client.create(
            "party.party",
            [
                {
                    "name": customer.name,
                    "addresses": [["create", addresses]],
                    "contact_mechanisms": [["create", mechanisms]],
                }
            ],
        )
        return party_id

    async def _address_values(self, address: Address) -> dict[str, Any]:
        street = address.line1 if not address.line2 else f"{address.line1}\n{address.line2}"
        values: dict[str, Any] = {
            "party_name": address.name,
            "street": street,
            "postal_code": address.postal_code,
            "city": address.city,
        }
        countries = await self.client.search(
            "country.country", [("code", "=", address.country)], limit=1
        )
        if countries:
            values["country"] = countries[0]
        return values

    async def get_customer(self, customer_id: str) -> Customer | None:
        async with tryton_errors():
            parties = await self.client.search_read(
                "party.party",
                [("code", "=", customer_id)],
                ["code", "name", "contact_mechanisms", "addresses"],
                limit=1,
            )
            if not parties:
                return None
            party = parties[0]
            mechanisms = await self.client.read(
                "party.contact_mechanism", party["contact_mechanisms"], ["type", "value"]
            )
            addresses = await self.client.read(
                "party.address",
                party["addresses"],
                [
                    "party_name",
                    "street",
                    "postal_code",
                    "city",
                    "country.code",
                    "invoice",
                    "delivery",
                ],
            )

        def first(kind: str) -> str | None:
            return next((m["value"] for m in mechanisms if m["type"] == kind and m["value"]), None)

        def address(flag: str) -> Address | None:
            chosen = next((a for a in addresses if a[flag]), addresses[0] if addresses else None)
            if chosen is None:
                return None
            country = (chosen.get("country.") or {}).get("code")
            street = (chosen.get("street") or "").splitlines()
            if not (country and street and chosen.get("city") and chosen.get("postal_code")):
                return None  # Tryton holds less than a postal address of the contracts
            return Address(
                name=chosen.get("party_name") or party["name"],
                line1=street[0],
                line2="\n".join(street[1:]) or None,
                city=chosen["city"],
                postal_code=chosen["postal_code"],
                country=country,
            )

        phone = first("phone") or first("mobile")
        return Customer(
            customer_id=party["code"],
            name=party["name"],
            email=first("email"),
            phone=phone[:32] if phone else None,
            billing_address=address("invoice"),
            shipping_address=address("delivery"),
        )

    # ------------------------------------------------------------------ invoices

    async def post_invoice(self, request: InvoiceRequest) -> Invoice:
        async with self.client.lock(f"invoice:{request.reference}"), tryton_errors():
            existing = await self._documents_by_reference(request.reference, credit=False)
            if existing is not None:
                if existing["state"] == "draft":
                    await self._post_or_discard(existing["id"])
                    existing = await self._invoice_record(existing["id"])
                return await self._invoice(existing)
            async with self.client.lock(f"sale-number:{request.sales_order_id}"):
                invoice_id = await self._create_invoice(request)
            await self._post_or_discard(invoice_id)
            return await self._invoice(await self._invoice_record(invoice_id))

    async def _create_invoice(self, request: InvoiceRequest) -> int:
        sale = await self._require_sale(request.sales_order_id)
        number = sale["number"]
        if sale["state"] not in CONFIRMED_SALE_STATES or await self._cancelled_after_confirm(sale):
            state = SALE_STATES[sale["state"]].value
            raise InvalidDocumentState(
                f"sales order {number} is {state}; only confirmed orders are invoiced"
            )
        lines = {line_id_of(line): line for line in await self.sale_lines(sale)}
        invoiced: dict[int, int] = defaultdict(int)
        for line in await self._invoice_lines_of_sale(sale):
            sale_line = origin_id(line["origin"], "sale.line")
            if sale_line is not None:
                invoiced[sale_line] += quantity(line["quantity"])
        new_lines: list[dict[str, Any]] = []
        accounts = await self._revenue_accounts([line["product"] for line in lines.values()])
        for item in request.lines:
            source = lines.get(item.line_id)
            if source is None:
                raise InvalidDocumentState(f"sales order {number} has no line {item.line_id!r}")
            ordered = quantity(source["quantity"])
            already = invoiced[source["id"]]
            if already + item.quantity > ordered:
                raise QuantityExceeded(
                    f"line {item.line_id}: {already} of {ordered} already invoiced, "
                    f"{item.quantity} more requested"
                )
            new_lines.append(
                {
                    "type": "line",
                    "product": source["product"],
                    "quantity": float(item.quantity),
                    "unit": source["unit"],
                    "unit_price": Decimal(source["unit_price"]),
                    "account": accounts[source["product"]],
                    "origin": f"sale.line,{source['id']}",
                }
            )
        accounting = await self._accounting()
        values: dict[str, Any] = {
            "type": "out",
            "company": sale["company"],
            "party": sale["party"],
            "invoice_address": sale["invoice_address"],
            "currency": sale["currency"],
            "account": accounting["receivable"],
            "journal": accounting["journal"],
            "reference": request.reference,
            "description": f"{number} ({sale['reference']})",
            "lines": [["create", new_lines]],
        }
        payment_term = sale.get("payment_term") or accounting["payment_term"]
        if payment_term:
            values["payment_term"] = payment_term
        (invoice_id,) = await self.client.create("account.invoice", [values])
        return invoice_id

    async def _post_or_discard(self, invoice_id: int) -> None:
        try:
            await self.client.button("account.invoice", "post", [invoice_id])
        except TrytonError:
            with contextlib.suppress(TrytonError):
                await self.client.call("account.invoice", "delete", [invoice_id])
            raise

    async def _revenue_accounts(self, product_ids: list[int]) -> dict[int, int]:
        products = await self.client.read(
            "product.product", sorted(set(product_ids)), ["account_category"]
        )
        categories = sorted({p["account_category"] for p in products if p["account_category"]})
        revenue = {
            c["id"]: c["account_revenue"]
            for c in await self.client.read("product.category", categories, ["account_revenue"])
        }
        accounts: dict[int, int] = {}
        for product in products:
            account = revenue.get(product["account_category"])
            if not account:
                raise BackendRejected(
                    BACKEND, f"product {product['id']} has no revenue account in Tryton"
                )
            accounts[product["id"]] = account
        return accounts

    async def _invoice_lines_of_sale(self, sale: dict[str, Any]) -> list[dict[str, Any]]:
        origins = [f"sale.line,{line_id}" for line_id in sale["lines"]]
        if not origins:
            return []
        return await self.client.search_read(
            "account.invoice.line",
            [("origin", "in", origins), ("invoice.state", "!=", "cancelled")],
            ["origin", "quantity"],
        )

    async def _documents_by_reference(
        self, reference: str, *, credit: bool
    ) -> dict[str, Any] | None:
        """The invoice (or credit note) the gateway recorded with this reference."""
        records = await self.client.search_read(
            "account.invoice",
            [("reference", "=", reference), ("type", "=", "out"), ("state", "!=", "cancelled")],
            INVOICE_FIELDS,
            order=[("id", "ASC")],
        )
        for record in records:
            if await self._is_credit_note(record) is credit:
                return record
        return None

    async def _is_credit_note(self, record: dict[str, Any]) -> bool:
        lines = await self.client.read("account.invoice.line", record["lines"], ["origin"])
        return any(origin_id(line["origin"], "account.invoice.line") for line in lines)

    async def _invoice_record(self, invoice_id: int) -> dict[str, Any]:
        (record,) = await self.client.read("account.invoice", [invoice_id], INVOICE_FIELDS)
        return record

    async def _invoice(self, record: dict[str, Any]) -> Invoice:
        currency = record["currency."]["code"]
        lines = await self.client.read("account.invoice.line", record["lines"], INVOICE_LINE_FIELDS)
        sale_line_ids = [origin_id(line["origin"], "sale.line") for line in lines]
        sale_lines = {
            line["id"]: line
            for line in await self.client.read(
                "sale.line",
                [i for i in sale_line_ids if i],
                ["note", "sequence", "product.code", "sale"],
            )
        }
        sale_ids = sorted({line["sale"] for line in sale_lines.values()})
        sales = await self.client.read("sale.sale", sale_ids, ["number"])
        invoice_lines = []
        for line, sale_line_id in zip(lines, sale_line_ids, strict=True):
            source = sale_lines.get(sale_line_id or 0)
            if source is None:
                continue
            invoice_lines.append(
                InvoiceLine(
                    line_id=line_id_of(source),
                    sku=source["product."]["code"],
                    quantity=quantity(line["quantity"]),
                    unit_price=Money(amount=Decimal(line["unit_price"]), currency=currency),
                    amount=Money(amount=Decimal(line["amount"]), currency=currency),
                )
            )
        invoice_lines.sort(key=lambda line: line.line_id)
        return Invoice(
            invoice_id=record["number"],
            sales_order_id=sales[0]["number"] if sales else "",
            reference=record["reference"],
            currency=currency,
            lines=invoice_lines,
            total=Money(amount=Decimal(record["total_amount"]), currency=currency),
            posted_at=utc(record["create_date"]),
        )

    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        async with tryton_errors():
            record = await self._invoice_by_number(invoice_id)
            return None if record is None else await self._invoice(record)

    async def _invoice_by_number(self, number: str) -> dict[str, Any] | None:
        records = await self.client.search_read(
            "account.invoice",
            [("number", "=", number), ("type", "=", "out")],
            INVOICE_FIELDS,
            order=[("id", "ASC")],
        )
        for record in records:
            if not await self._is_credit_note(record):
                return record
        return None

    # ------------------------------------------------------------------ credit notes

    async def post_credit_note(self, request: CreditNoteRequest) -> CreditNote:
        async with self.client.lock(f"credit:{request.reference}"), tryton_errors():
            existing = await self._documents_by_reference(request.reference, credit=True)
            if existing is not None:
                if existing["state"] == "draft":
                    await self._post_or_discard(existing["id"])
                    existing = await self._invoice_record(existing["id"])
                return await self._credit_note(existing)
            async with self.client.lock(f"invoice-number:{request.invoice_id}"):
                credit_id = await self._create_credit_note(request)
            await self._post_or_discard(credit_id)
            return await self._credit_note(await self._invoice_record(credit_id))

    async def _create_credit_note(self, request: CreditNoteRequest) -> int:
        invoice = await self._invoice_by_number(request.invoice_id)
        if invoice is None:
            raise DocumentNotFound("invoice", request.invoice_id)
        (header,) = await self.client.read(
            "account.invoice",
            [invoice["id"]],
            [
                "company",
                "party",
                "invoice_address",
                "currency",
                "account",
                "journal",
                "payment_term",
            ],
        )
        currency = invoice["currency."]["code"]
        lines = await self.client.read(
            "account.invoice.line", invoice["lines"], INVOICE_LINE_FIELDS
        )
        sale_lines = {
            line["id"]: line
            for line in await self.client.read(
                "sale.line",
                _origin_ids(lines, "sale.line"),
                ["note", "sequence", "unit", "product"],
            )
        }
        by_line_id: dict[str, dict[str, Any]] = {}
        for line in lines:
            source = sale_lines.get(origin_id(line["origin"], "sale.line") or 0)
            if source is not None:
                by_line_id[line_id_of(source)] = {**line, "unit": source["unit"]}
        credited: dict[int, tuple[int, Decimal]] = {}
        for line in await self.client.search_read(
            "account.invoice.line",
            [
                ("origin", "in", [f"account.invoice.line,{line['id']}" for line in lines]),
                ("invoice.state", "!=", "cancelled"),
            ],
            ["origin", "quantity", "amount"],
        ):
            source_id = origin_id(line["origin"], "account.invoice.line") or 0
            q, a = credited.get(source_id, (0, Decimal(0)))
            credited[source_id] = (q - quantity(line["quantity"]), a - Decimal(line["amount"]))
        new_lines: list[dict[str, Any]] = []
        for item in request.lines:
            source = by_line_id.get(item.line_id)
            if source is None:
                raise InvalidDocumentState(
                    f"invoice {request.invoice_id} has no line {item.line_id!r}"
                )
            if item.amount.currency != currency:
                raise InvalidDocumentState(
                    f"invoice {request.invoice_id} is in {currency}, not {item.amount.currency}"
                )
            quantity_so_far, amount_so_far = credited.get(source["id"], (0, Decimal(0)))
            invoiced_quantity = quantity(source["quantity"])
            invoiced_amount = Decimal(source["amount"])
            if quantity_so_far + item.quantity > invoiced_quantity:
                raise QuantityExceeded(
                    f"line {item.line_id}: {quantity_so_far} of {invoiced_quantity} already "
                    "credited"
                )
            if amount_so_far + item.amount.amount > invoiced_amount:
                raise QuantityExceeded(
                    f"line {item.line_id}: crediting {item.amount.amount} would exceed the "
                    f"invoiced {invoiced_amount} ({amount_so_far} already credited)"
                )
            for units, unit_price in split_amount(item.quantity, item.amount.amount):
                new_lines.append(
                    {
                        "type": "line",
                        "product": source["product"],
                        "quantity": -float(units),
                        "unit": source["unit"],
                        "unit_price": unit_price,
                        "account": (await self._revenue_accounts([source["product"]]))[
                            source["product"]
                        ],
                        "taxes": [["add", source["taxes"]]],
                        "origin": f"account.invoice.line,{source['id']}",
                    }
                )
        values: dict[str, Any] = {
            "type": "out",
            "company": header["company"],
            "party": header["party"],
            "invoice_address": header["invoice_address"],
            "currency": header["currency"],
            "account": header["account"],
            "journal": header["journal"],
            "reference": request.reference,
            "description": request.reason[:500],
            "lines": [["create", new_lines]],
        }
        if header.get("payment_term"):
            values["payment_term"] = header["payment_term"]
        (credit_id,) = await self.client.create("account.invoice", [values])
        return credit_id

    async def _credit_note(self, record: dict[str, Any]) -> CreditNote:
        currency = record["currency."]["code"]
        lines = await self.client.read("account.invoice.line", record["lines"], INVOICE_LINE_FIELDS)
        credited_ids = [origin_id(line["origin"], "account.invoice.line") for line in lines]
        credited = {
            line["id"]: line
            for line in await self.client.read(
                "account.invoice.line", [i for i in credited_ids if i], ["invoice", "origin"]
            )
        }
        sale_lines = {
            line["id"]: line
            for line in await self.client.read(
                "sale.line",
                _origin_ids(credited.values(), "sale.line"),
                ["note", "sequence", "sale"],
            )
        }
        totals: dict[str, tuple[int, Decimal]] = {}
        invoice_ids: set[int] = set()
        sale_ids: set[int] = set()
        for line, credited_id in zip(lines, credited_ids, strict=True):
            source = credited.get(credited_id or 0)
            if source is None:
                continue
            invoice_ids.add(source["invoice"])
            sale_line = sale_lines.get(origin_id(source["origin"], "sale.line") or 0)
            if sale_line is None:
                continue
            sale_ids.add(sale_line["sale"])
            line_id = line_id_of(sale_line)
            q, a = totals.get(line_id, (0, Decimal(0)))
            totals[line_id] = (q - quantity(line["quantity"]), a - Decimal(line["amount"]))
        invoices = await self.client.read("account.invoice", sorted(invoice_ids), ["number"])
        sales = await self.client.read("sale.sale", sorted(sale_ids), ["reference"])
        return CreditNote(
            credit_note_id=record["number"],
            invoice_id=invoices[0]["number"] if invoices else "",
            order_id=sales[0]["reference"] if sales else "",
            lines=[
                CreditNoteLine(
                    line_id=line_id, quantity=q, amount=Money(amount=a, currency=currency)
                )
                for line_id, (q, a) in sorted(totals.items())
            ],
            total=Money(amount=-Decimal(record["total_amount"]), currency=currency),
            reason=record.get("description") or "credit note",
        )


async def ignore_shipment_exceptions(client: TrytonClient, sale_id: int) -> None:
    """Run Tryton's "handle shipment exception" wizard on a sale, ignoring every move in
    exception (cancelled shipments): the sale stops waiting for them."""

    def ignore_all(start: str, first: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        moves = first.get("view", {}).get("defaults", {}).get("domain_moves") or []
        return [
            (
                "handle",
                {start: {"domain_moves": moves, "ignore_moves": moves, "recreate_moves": []}},
            )
        ]

    (sale,) = await client.read("sale.sale", [sale_id], ["shipment_state"])
    if sale["shipment_state"] == "exception":
        await client.run_wizard(
            "sale.handle.shipment.exception", "sale.sale", [sale_id], ignore_all
        )


def _origin_ids(records: Iterable[dict[str, Any]], model: str) -> list[int]:
    """The ids of the ``model`` records the records' origins name."""
    ids = (origin_id(record["origin"], model) for record in records)
    return [i for i in ids if i is not None]
