"""Exceptions: a workflow step that could not complete on its own and needs a person."""

from enum import StrEnum

from pydantic import Field

from contracts.common import ChannelCode, ContractModel, Identifier, UtcDateTime
from contracts.money import Money

__all__ = [
    "SEVERITY_ORDER",
    "AcknowledgeRequest",
    "ExceptionEntry",
    "ExceptionRecord",
    "ExceptionStatus",
    "FailedStep",
    "ResolveAction",
    "ResolveRequest",
    "Severity",
    "raised_severity",
]


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


SEVERITY_ORDER = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)


def raised_severity(severity: Severity) -> Severity:
    """One step more severe, up to critical: what an escalation does."""
    position = SEVERITY_ORDER.index(severity)
    return SEVERITY_ORDER[min(position + 1, len(SEVERITY_ORDER) - 1)]


class ExceptionStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    IGNORED = "ignored"

    @property
    def closed(self) -> bool:
        return self in (ExceptionStatus.RESOLVED, ExceptionStatus.IGNORED)


class ExceptionEntry(ContractModel):
    """One change of an exception: raised, raised again, acknowledged, escalated, resolved..."""

    at: UtcDateTime
    actor: str = Field(min_length=1, max_length=128)
    action: str = Field(min_length=1, max_length=32)
    status: ExceptionStatus
    correlation_id: str | None = Field(default=None, max_length=128)
    note: str | None = Field(default=None, max_length=4000)


class FailedStep(ContractModel):
    """The workflow step that gave up after its retry policy; "retry" runs it again."""

    kind: str = Field(min_length=1, max_length=64, description="e.g. order.validate.")
    key: str = Field(min_length=1, max_length=200, description="Which one, e.g. the order id.")


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
    owner_team: str | None = Field(
        default=None, max_length=64, description="The team the routing rules gave it to."
    )
    escalations: int = Field(
        default=0,
        ge=0,
        description="How often its SLA passed unresolved; severity rose each time.",
    )
    failed_step: FailedStep | None = Field(
        default=None, description="The step that gave up, when the exception came from one."
    )
    created_at: UtcDateTime
    updated_at: UtcDateTime
    history: list[ExceptionEntry] = Field(default_factory=list)


class ResolveAction(StrEnum):
    """How a person closes an exception."""

    RETRY = "retry"
    """Run the failed step again now; resolved once it succeeds (acknowledged meanwhile)."""
    REPLAY = "replay"
    """Send again what could not be delivered (available where delivery offers it)."""
    CANCEL = "cancel"
    """Cancel the order the exception is about."""
    FIXED_BY_HAND = "fixed_by_hand"
    """The problem was repaired outside the gateway."""
    IGNORE = "ignore"
    """Nothing will be done about it."""


class AcknowledgeRequest(ContractModel):
    """Someone is working on the exception."""

    note: str | None = Field(default=None, max_length=4000)


class ResolveRequest(ContractModel):
    """An action that closes the exception (or, for retry, runs its step again)."""

    action: ResolveAction
    note: str | None = Field(
        default=None,
        min_length=1,
        max_length=4000,
        description="Why; required for fixed_by_hand and ignore (kept in the history).",
    )
