"""Operating webhook delivery for internal apps: dead letters, replay, re-send, attempts."""

from process_api.deliveries.service import (
    ENDPOINT_DISABLED,
    WORKFLOW,
    DeliveryOperations,
    open_endpoint_exception,
    replay_action,
)

__all__ = [
    "ENDPOINT_DISABLED",
    "WORKFLOW",
    "DeliveryOperations",
    "open_endpoint_exception",
    "replay_action",
]
