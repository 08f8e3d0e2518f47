"""Canonical data contracts shared by system_api, process_api and partner_api.

Depends on nothing but the standard library and pydantic.
"""

from contracts.common import (
    ChannelCode,
    ContractModel,
    CountryCode,
    CurrencyCode,
    Identifier,
    LineId,
    Quantity,
    Sku,
    UtcDateTime,
    ensure_utc,
)
from contracts.customer import Address, Customer
from contracts.events import EventEnvelope
from contracts.inventory import ChannelAvailability, InventoryPosition
from contracts.money import Money, minor_unit_exponent
from contracts.order import (
    LineRejection,
    Order,
    OrderLine,
    OrderStatus,
    OrderSubmission,
    OrderTransition,
    RejectionReason,
    order_total,
)
from contracts.price import Price, Promotion
from contracts.problem import PROBLEM_MEDIA_TYPE, FieldError, Problem
from contracts.product import Product, ProductStatus
from contracts.refund import CreditNote, CreditNoteLine, Refund
from contracts.returns import (
    Disposition,
    InspectionGrade,
    InspectionResult,
    Return,
    ReturnLine,
    ReturnReceiptLine,
    ReturnRequest,
    ReturnStatus,
)
from contracts.settlement import SettlementLine, SettlementReport
from contracts.shipment import Package, Shipment, ShipmentLine

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "Address",
    "ChannelAvailability",
    "ChannelCode",
    "ContractModel",
    "CountryCode",
    "CreditNote",
    "CreditNoteLine",
    "CurrencyCode",
    "Customer",
    "Disposition",
    "EventEnvelope",
    "FieldError",
    "Identifier",
    "InspectionGrade",
    "InspectionResult",
    "InventoryPosition",
    "LineId",
    "LineRejection",
    "Money",
    "Order",
    "OrderLine",
    "OrderStatus",
    "OrderSubmission",
    "OrderTransition",
    "Package",
    "Price",
    "Problem",
    "Product",
    "ProductStatus",
    "Promotion",
    "Quantity",
    "Refund",
    "RejectionReason",
    "Return",
    "ReturnLine",
    "ReturnReceiptLine",
    "ReturnRequest",
    "ReturnStatus",
    "SettlementLine",
    "SettlementReport",
    "Shipment",
    "ShipmentLine",
    "Sku",
    "UtcDateTime",
    "ensure_utc",
    "minor_unit_exponent",
    "order_total",
]
