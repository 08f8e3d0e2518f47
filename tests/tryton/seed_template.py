# mypy: ignore-errors
"""Seed a fresh Tryton database for the gateway's `tryton` tests (runs in the Tryton venv).

Usage: <tryton venv>/bin/python seed_template.py CONFIG_FILE DATABASE MANIFEST_JSON

The database must already hold the activated modules (see harness.build_template_database).
Everything here goes through proteus in-process (no server); the JSON manifest it writes names
the seeded records so the tests need not look them up by hand.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from proteus import Model, config
from trytond.modules.account.tests.tools import create_chart, create_fiscalyear, get_accounts
from trytond.modules.account_invoice.tests.tools import (
    create_payment_term,
    set_fiscalyear_invoice_sequences,
)
from trytond.modules.company.tests.tools import create_company

COMPANY_NAME = "Retail Sync Demo"
CUSTOMER_NAME = "Demo Customer"
FOLLOWING_YEARS = 2
# code, name, list price, quantity put in stock (STO)
PRODUCTS = [
    ("SKU-001", "Blue T-Shirt", Decimal("19.90"), 100),
    ("SKU-002", "Red Mug", Decimal("8.50"), 50),
    ("SKU-003", "Canvas Tote", Decimal("12.00"), 20),
    ("SKU-004", "Gift Box", Decimal("5.00"), 0),
]
# The catalogue of the system API's conformance suite (tests/system/conformance/backends.py):
# code, name, list price, active. No opening stock: the tests receive what they ship.
CONFORMANCE_PRODUCTS = [
    ("MUG-RED-350", "Red mug 350 ml", Decimal("12.90"), True),
    ("TEE-ORG-M", "Organic tee M", Decimal("24.00"), True),
    ("LAMP-DESK-01", "Desk lamp", Decimal("59.00"), True),
    ("VASE-OLD-01", "Discontinued vase", Decimal("30.00"), False),
]
# A few countries, so customer addresses keep theirs (no full country import in the template).
COUNTRIES = [
    ("BE", "Belgium"),
    ("DE", "Germany"),
    ("ES", "Spain"),
    ("FR", "France"),
    ("GB", "United Kingdom"),
    ("IT", "Italy"),
    ("NL", "Netherlands"),
    ("US", "United States"),
]


def main(config_file: str, database: str, manifest_path: str) -> None:
    config.set_trytond(database=database, config_file=config_file)

    Party = Model.get("party.party")
    Location = Model.get("stock.location")

    # Company in EUR; create_company sets the user's company and context.
    company_party = Party(name=COMPANY_NAME)
    company_address = company_party.addresses[0]
    company_address.street = "1 Warehouse Road"
    company_address.postal_code = "1000"
    company_address.city = "Brussels"
    company_party.save()
    create_company(party=company_party, currency="EUR")
    Company = Model.get("company.company")
    (company,) = Company.find()

    # Chart of accounts; create_chart also writes the default receivable/payable and the
    # default category revenue/expense accounts on account.configuration.
    create_chart(company)
    accounts = get_accounts(company)

    # Fiscal year around today with invoice sequences and monthly periods.
    fiscalyear = set_fiscalyear_invoice_sequences(create_fiscalyear(company))
    fiscalyear.click("create_period")
    # ... and FOLLOWING_YEARS more, because the template is cached and reused for a long time:
    # posting needs an open period on the invoice date. The manifest says until when.
    last = fiscalyear
    for index in range(1, FOLLOWING_YEARS + 1):
        start = last.end_date + dt.timedelta(days=1)
        following = create_fiscalyear(company, today=start)
        following.name = f"{fiscalyear.name}+{index}"
        following.start_date = start
        following.end_date = start + relativedelta(years=1, days=-1)
        following = set_fiscalyear_invoice_sequences(following)
        following.click("create_period")
        last = following

    payment_term = create_payment_term()
    payment_term.save()

    # Account category: products need one, or invoice lines have no revenue account.
    Category = Model.get("product.category")
    account_category = Category(name="Goods")
    account_category.accounting = True
    account_category.account_revenue = accounts["revenue"]
    account_category.account_expense = accounts["expense"]
    account_category.save()

    # Sales invoice when the goods are shipped ("fulfillment", formerly "shipment").
    SaleConfig = Model.get("sale.configuration")
    sale_config = SaleConfig(1)
    sale_config.sale_invoice_method = "fulfillment"
    sale_config.sale_shipment_method = "order"
    sale_config.save()

    # Customer with an address, e-mail and phone; the payment term makes invoices postable.
    customer = Party(name=CUSTOMER_NAME)
    customer.customer_payment_term = payment_term
    address = customer.addresses[0]
    address.street = "5 Market Street"
    address.postal_code = "1050"
    address.city = "Ixelles"
    customer.contact_mechanisms.new(type="email", value="customer@example.com")
    customer.contact_mechanisms.new(type="phone", value="+3225550100")
    customer.save()

    # Products: the product code is computed from the template code and the variant's
    # suffix_code; we leave the template code empty so code == suffix_code.
    Uom = Model.get("product.uom")
    (unit,) = Uom.find([("name", "=", "Unit")])
    Template = Model.get("product.template")
    products = {}
    for code, name, price, _quantity in PRODUCTS:
        template = Template(name=name)
        template.default_uom = unit
        template.type = "goods"
        template.salable = True
        template.list_price = price
        template.account_category = account_category
        (variant,) = template.products
        variant.suffix_code = code
        template.save()
        products[code] = template.products[0]

    conformance = {}
    for code, name, price, active in CONFORMANCE_PRODUCTS:
        template = Template(name=name)
        template.default_uom = unit
        template.type = "goods"
        template.salable = True
        template.list_price = price
        template.account_category = account_category
        (variant,) = template.products
        variant.suffix_code = code
        template.save()
        conformance[code] = template.products[0]
        if not active:
            product = conformance[code]
            product.active = False
            product.save()

    Country = Model.get("country.country")
    for code, name in COUNTRIES:
        Country(code=code, name=name).save()

    # Locations: the default warehouse WH with its storage STO, plus a quarantine location
    # for returned goods (a storage location under the warehouse, not counted as STO stock).
    (warehouse,) = Location.find([("code", "=", "WH")])
    (storage,) = Location.find([("code", "=", "STO")])
    quarantine = Location(name="Quarantine", code="QUA", type="storage", parent=warehouse)
    quarantine.save()
    (customer_location,) = Location.find([("code", "=", "CUS")])
    (lost_found,) = Location.find([("type", "=", "lost_found")], limit=1)
    # Scrapped goods (e.g. returns inspected as scrap) go to a waste location of the warehouse.
    scrap = Location(name="Scrap", code="SCRAP", type="lost_found")
    scrap.save()
    warehouse.waste_locations.append(Location(scrap.id))
    warehouse.save()

    # A package type for customer shipments (stock_package needs one per package).
    PackageType = Model.get("stock.package.type")
    box = PackageType(name="Box")
    box.save()

    # Opening stock through one inventory in STO.
    Inventory = Model.get("stock.inventory")
    inventory = Inventory(location=storage)
    for code, _name, _price, quantity in PRODUCTS:
        if quantity:
            line = inventory.lines.new(product=products[code])
            line.quantity = float(quantity)
    inventory.click("confirm")
    assert inventory.state == "done", inventory.state

    Journal = Model.get("account.journal")
    (revenue_journal,) = Journal.find([("type", "=", "revenue")], limit=1)

    manifest = {
        "valid_until": last.end_date.isoformat(),
        "company": company.id,
        "company_name": COMPANY_NAME,
        "currency": "EUR",
        "customer": customer.id,
        "customer_address": customer.addresses[0].id,
        "revenue_account": accounts["revenue"].id,
        "receivable_account": accounts["receivable"].id,
        "revenue_journal": revenue_journal.id,
        "payment_term": payment_term.id,
        "account_category": account_category.id,
        "unit": unit.id,
        "package_type": box.id,
        "products": {
            code: {"id": products[code].id, "name": name, "list_price": str(price), "stock": qty}
            for code, name, price, qty in PRODUCTS
        },
        "conformance_products": {
            code: {"id": conformance[code].id, "list_price": str(price), "active": active}
            for code, _name, price, active in CONFORMANCE_PRODUCTS
        },
        "locations": {
            "scrap": scrap.id,
            "warehouse": warehouse.id,
            "storage": storage.id,
            "quarantine": quarantine.id,
            "customer": customer_location.id,
            "lost_found": lost_found.id,
        },
    }
    with open(manifest_path, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
