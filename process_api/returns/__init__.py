"""Return-to-refund: returns authorized by the channel's policy, received and inspected by the
warehouse, refunded through ERP credit notes when the policy says so, channel refunds reconciled,
and a reconciliation report of credit notes, receipts and channel refunds.

The service lives in process_api.returns.service; this package's top level exports only what
the partner edge may see (it must not import the service, which calls the system APIs)."""

from process_api.returns.models import ReturnCreate
from process_api.returns.port import Outcome, ReturnsPort, UnknownOrder, UnknownReturn

__all__ = ["Outcome", "ReturnCreate", "ReturnsPort", "UnknownOrder", "UnknownReturn"]
