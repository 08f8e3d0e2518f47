"""Return-to-refund: returns authorized by the channel's policy, received and inspected by the
warehouse, refunded through ERP credit notes when the policy says so, channel refunds reconciled,
and a reconciliation report of credit notes, receipts and channel refunds."""

from process_api.returns.models import ReturnCreate
from process_api.returns.port import ReturnsPort
from process_api.returns.service import Outcome, ReturnsService, UnknownOrder, UnknownReturn

__all__ = [
    "Outcome",
    "ReturnCreate",
    "ReturnsPort",
    "ReturnsService",
    "UnknownOrder",
    "UnknownReturn",
]
