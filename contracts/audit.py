"""The audit log: who changed what, when, and how it was before and after."""

from pydantic import Field, JsonValue

from contracts.common import ContractModel, UtcDateTime

__all__ = ["AuditEntry", "AuditPage"]


class AuditEntry(ContractModel):
    """One recorded change or operator action."""

    id: int = Field(description="Position in the log; newer entries have higher ids.")
    at: UtcDateTime = Field(description="When it happened (the gateway's clock).")
    actor: str = Field(
        description="Who: `operator:<username>` (ops console), `client:<client_id>` (process "
        "API), `config` (configuration at start-up) or `command-line`."
    )
    action: str = Field(description="What, e.g. `channel_profile.changed`, `exception.resolved`.")
    subject: str = Field(description="The object concerned, e.g. `channel_profile/webshop`.")
    channel: str | None = Field(default=None, description="The channel concerned, if any.")
    before: JsonValue = Field(default=None, description="The object before; null if it was new.")
    after: JsonValue = Field(default=None, description="The object after; null if removed.")
    correlation_id: str | None = Field(default=None, description="The request that did it.")


class AuditPage(ContractModel):
    """Audit entries, newest first."""

    items: list[AuditEntry]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next (older) page; absent at the end."
    )
