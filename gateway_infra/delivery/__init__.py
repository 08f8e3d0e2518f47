"""Webhook delivery: subscriptions, the relay from the outbox, the signing sender, operations.

See docs/webhooks.md for what partners see, and each module for how it works.
"""

from gateway_infra.delivery.admin import (
    DeadLetterQuery,
    DeliveryAdmin,
    DeliveryAdminError,
    NotReplayable,
    TooManyToResend,
    UnknownDelivery,
)
from gateway_infra.delivery.engine import WebhookDelivery
from gateway_infra.delivery.models import (
    Attempt,
    AttemptOutcome,
    Delivery,
    DeliveryState,
    DisabledEndpoint,
    Subscription,
    SubscriptionState,
)
from gateway_infra.delivery.policy import DeliveryPolicy
from gateway_infra.delivery.relay import Relay
from gateway_infra.delivery.safety import AddressPolicy, DestinationRefused, validate_url
from gateway_infra.delivery.sender import EndpointDisabledHandler, Sender
from gateway_infra.delivery.subscriptions import (
    InvalidSubscription,
    SubscriptionConflict,
    SubscriptionError,
    Subscriptions,
    SubscriptionWithSecret,
    UnknownSubscription,
)

__all__ = [
    "AddressPolicy",
    "Attempt",
    "AttemptOutcome",
    "DeadLetterQuery",
    "Delivery",
    "DeliveryAdmin",
    "DeliveryAdminError",
    "DeliveryPolicy",
    "DeliveryState",
    "DestinationRefused",
    "DisabledEndpoint",
    "EndpointDisabledHandler",
    "InvalidSubscription",
    "NotReplayable",
    "Relay",
    "Sender",
    "Subscription",
    "SubscriptionConflict",
    "SubscriptionError",
    "SubscriptionState",
    "SubscriptionWithSecret",
    "Subscriptions",
    "TooManyToResend",
    "UnknownDelivery",
    "UnknownSubscription",
    "WebhookDelivery",
    "validate_url",
]
