"""The scopes each layer declares, and the audience of each layer's tokens."""

from __future__ import annotations

from enum import StrEnum


class Layer(StrEnum):
    PARTNER = "partner"
    PROCESS = "process"
    SYSTEM = "system"


PARTNER_SCOPES: dict[str, str] = {
    "orders:write": "Submit and cancel the channel's orders.",
    "orders:read": "Read the channel's orders and shipments.",
    "inventory:read": "Read what the channel may sell of each SKU, and what was published to it.",
    "prices:read": "Read prices published to the channel.",
    "returns:write": "Request and read the channel's returns.",
    "events:read": "Read the channel's event feed and manage its webhooks.",
}
PROCESS_SCOPES: dict[str, str] = {
    "process:orders:read": "Read orders and their history.",
    "process:orders:write": "Submit and change orders.",
    "process:channels:read": "Read channel profiles.",
    "process:channels:write": "Change channel profiles.",
    "process:inventory:read": "Read inventory positions, availability and publication status.",
    "process:inventory:write": "Report stock and confirm availability publications.",
    "process:exceptions:read": "Read the exception queue.",
    "process:exceptions:write": "Acknowledge exceptions and resolve them with an action.",
    "process:deliveries:read": "Read webhook deliveries, their attempts and dead letters.",
    "process:deliveries:write": "Replay dead-lettered deliveries and re-send events to webhooks.",
    "process:settlements:read": "Read imported payout reports and their reconciliation.",
    "process:settlements:write": "Import channel payout reports for reconciliation.",
    "process:returns:read": "Read returns, their refunds and the returns reconciliation.",
    "process:returns:write": "Request, receive, inspect, refund and close returns.",
    "process:prices:read": "Read price books, price publication status and live prices.",
    "process:prices:write": "Edit and publish price books; confirm price publications.",
    "process:audit:read": "Read the audit log: who changed what, when, before and after.",
}
SYSTEM_SCOPES: dict[str, str] = {
    "system:erp:read": "Read ERP item master and documents.",
    "system:erp:write": "Create and change ERP documents.",
    "system:wms:read": "Read warehouses, stock and warehouse documents.",
    "system:wms:write": "Adjust stock, release fulfilments, confirm shipments and returns.",
}
SCOPES_BY_LAYER: dict[Layer, dict[str, str]] = {
    Layer.PARTNER: PARTNER_SCOPES,
    Layer.PROCESS: PROCESS_SCOPES,
    Layer.SYSTEM: SYSTEM_SCOPES,
}
ALL_SCOPES: dict[str, str] = {**PARTNER_SCOPES, **PROCESS_SCOPES, **SYSTEM_SCOPES}


def layer_of(scope: str) -> Layer:
    for layer, scopes in SCOPES_BY_LAYER.items():
        if scope in scopes:
            return layer
    raise ValueError(f"unknown scope {scope!r}")


def audience(issuer: str, layer: Layer) -> str:
    """The aud value a layer accepts: the issuer's base URL plus the layer's name."""
    return f"{issuer.rstrip('/')}/{layer.value}"
