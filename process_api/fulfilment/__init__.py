"""Order-to-cash after acceptance: release to the warehouse, shipments per package, invoices in
the ERP, and settlement of channel payouts against what was invoiced and refunded."""

from process_api.fulfilment.port import ShipmentsPort
from process_api.fulfilment.repository import invoiced_total, refunded_total, shipments_of
from process_api.fulfilment.service import FulfilmentService, UnknownOrder

__all__ = [
    "FulfilmentService",
    "ShipmentsPort",
    "UnknownOrder",
    "invoiced_total",
    "refunded_total",
    "shipments_of",
]
