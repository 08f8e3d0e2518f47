"""What return-to-refund takes in and hands back, beside the canonical Return of contracts."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts import Money
from contracts.common import ChannelCode, ContractModel, LineId, Quantity, ensure_unique
from contracts.returns import InspectionResult, Return, ReturnReceiptLine, ReturnRequest
from gateway_infra.scheduler import RetryPolicy

SOURCE = "process_api.returns"
WORKFLOW = "returns"
"""The exception workflow of everything this package raises."""

RECEIVE_TIMER = "returns.receive"
"""Timer kind, keyed by return id: have the WMS record the return's receipt."""
INSPECT_TIMER = "returns.inspect"
"""Timer kind, keyed by return id: have the WMS record the inspection, then report the stock."""
REFUND_TIMER = "returns.refund"
"""Timer kind, keyed by return id: have the ERP post the credit notes of pending refunds."""

FIRST_RETRY_AFTER = timedelta(seconds=30)
# Returns reconciliation is critical (money leaves): retry long, then tell a person.
BACKEND_RETRY = RetryPolicy(
    max_attempts=40, base_delay=timedelta(seconds=5), max_delay=timedelta(minutes=10)
)
DEFAULT_WAREHOUSE = "WH"
MAX_LINES = 500

_PLAIN_TEXT = r"^[^\x00-\x1f\x7f]*$"


class ReturnCreate(ReturnRequest):
    """A return a channel asked for, submitted on the channel's behalf."""

    channel: ChannelCode = Field(description="The channel the order came from.")


class TransitRequest(BaseModel):
    """The goods are on their way back (a carrier scanned the parcel)."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=500, pattern=_PLAIN_TEXT)


class ReceiveRequest(ContractModel):
    """What physically arrived at the warehouse; a line not listed received nothing."""

    warehouse: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$",
        description="Warehouse code; the order's warehouse when absent.",
    )
    lines: list[ReturnReceiptLine] = Field(min_length=1, max_length=MAX_LINES)

    @model_validator(mode="after")
    def _unique_lines(self) -> Self:
        ensure_unique((line.line_id for line in self.lines), "line_id")
        return self


class InspectRequest(ContractModel):
    """Grade and disposition of every received unit, possibly several outcomes per line.

    Empty only when nothing was received."""

    lines: list[InspectionResult] = Field(max_length=MAX_LINES)

    @model_validator(mode="after")
    def _units_counted(self) -> Self:
        if any(result.quantity == 0 for result in self.lines):
            raise ValueError("every inspection outcome counts at least one unit")
        return self


class ApprovedLine(ContractModel):
    line_id: LineId
    quantity: Quantity


class ApproveRequest(ContractModel):
    """Approve the refund of an inspected return: by default every unit graded resellable of
    the lines refunded after inspection; or the units listed (received and not missing)."""

    lines: list[ApprovedLine] | None = Field(default=None, min_length=1, max_length=MAX_LINES)
    note: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _unique_lines(self) -> Self:
        if self.lines:
            ensure_unique((line.line_id for line in self.lines), "line_id")
        return self


class CloseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500, pattern=_PLAIN_TEXT)


class ReturnList(BaseModel):
    """A page of returns, oldest change first."""

    items: list[Return]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; absent on the last page."
    )


# ---------------------------------------------------------------- reconciliation


class MismatchCode(StrEnum):
    CHANNEL_REFUND_NOT_CREDITED = "channel_refund_not_credited"
    """The channel refunded more than the ERP credited for the return."""
    CREDITED_BEYOND_CHANNEL_REFUND = "credited_beyond_channel_refund"
    """The ERP credited more than the channel refunded."""
    CREDITED_WITHOUT_RECEIPT = "credited_without_receipt"
    """The ERP credited goods the WMS has not received (yet)."""
    CHANNEL_REFUND_WITHOUT_RECEIPT = "channel_refund_without_receipt"
    """The channel refunded goods the WMS has not received (yet)."""


class Mismatch(BaseModel):
    """One disagreement between ERP credit notes, WMS receipts and channel refunds."""

    return_id: str
    order_id: str
    channel: str
    channel_return_id: str | None
    status: str
    code: MismatchCode
    amount: Money = Field(description="How much the two sides differ by.")
    credited: Money = Field(description="What the ERP credited for the return.")
    received: Money = Field(description="Units the WMS received, at the order's prices.")
    channel_refunded: Money | None = Field(description="What the channel refunded on its own.")
    detail: str


class PeriodTotals(BaseModel):
    """Totals of the period's returns in one currency."""

    currency: str
    returns: int
    credited: Money
    received: Money
    channel_refunded: Money


class ReturnsReconciliation(BaseModel):
    """ERP credit notes vs WMS receipts vs channel refunds of the returns created in a period,
    as they stand now; every mismatch listed with its amount."""

    period_start: datetime
    period_end: datetime
    channel: str | None
    generated_at: datetime
    totals: list[PeriodTotals]
    mismatches: list[Mismatch]


def money(amount: Decimal, currency: str) -> Money:
    return Money(amount=amount, currency=currency)
