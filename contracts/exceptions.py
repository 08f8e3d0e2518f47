"""Exceptions: a workflow step that could not complete on its own and needs a person."""

from enum import StrEnum

from pydantic import Field

from contracts.common import ChannelCode, ContractModel, Identifier, UtcDateTime
from contracts.money import Money

__all__ = ["ExceptionEntry", "ExceptionRecord", "ExceptionStatus", "Severity"]


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class ExceptionStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    IGNORED = "ignored"


class ExceptionEntry(ContractModel):
    """One change of an exception: raised, raised again, resolved."""

    at: UtcDateTime
    actor: str = Field(min_length=1, max_length=128)
    action: str = Field(min_length=1, max_length=32)
    status: ExceptionStatus
    correlation_id: str | None = Field(default=None, max_length=128)
    note: str | None = Field(default=None, max_length=4000)


class ExceptionRecord(ContractModel):
    """An open or closed exception with what it concerns and what is at stake."""

    exception_id: Identifier
    workflow: str = Field(min_length=1, max_length=40, description="e.g. order_capture.")
    code: str = Field(min_length=1, max_length=64, description="Machine-readable error code.")
    subject: str = Field(min_length=1, max_length=200, description="e.g. order/ord_123.")
    channel: ChannelCode | None = None
    detail: str = Field(min_length=1, max_length=4000)
    object_ids: dict[str, str] = Field(default_factory=dict)
    money_at_risk: Money | None = None
    severity: Severity
    status: ExceptionStatus
    due_at: UtcDateTime | None = Field(
        default=None, description="When the problem turns into harm unless someone acts."
    )
    occurrences: int = Field(ge=1, description="How often the problem was raised while open.")
    created_at: UtcDateTime
    updated_at: UtcDateTime
    history: list[ExceptionEntry] = Field(default_factory=list)
