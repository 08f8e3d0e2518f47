"""Inventory governance: reservations that never pass on-hand, WMS counts, availability per channel.

Repository functions run inside the caller's unit of work (order intake reserves in the same
transaction as it records the order); InventoryService runs each call as its own transaction.
"""

from process_api.inventory.models import (
    EXPIRY_TIMER,
    Consumption,
    Position,
    Publication,
    Published,
    ReservationLine,
    ReservationNotFound,
    ReservationState,
    Shortfall,
)
from process_api.inventory.publication import (
    AVAILABILITY_CHANGED,
    available_to_sell,
    confirm_publication,
    publish_changes,
    sync_lag,
)
from process_api.inventory.repository import (
    consume,
    expire_due,
    expire_order,
    position,
    release_order,
    report_on_hand,
    report_on_hand_many,
    reserve_lines,
    set_expiry,
)
from process_api.inventory.service import InventoryService, ProfileSource

__all__ = [
    "AVAILABILITY_CHANGED",
    "EXPIRY_TIMER",
    "Consumption",
    "InventoryService",
    "Position",
    "ProfileSource",
    "Publication",
    "Published",
    "ReservationLine",
    "ReservationNotFound",
    "ReservationState",
    "Shortfall",
    "available_to_sell",
    "confirm_publication",
    "consume",
    "expire_due",
    "expire_order",
    "position",
    "publish_changes",
    "release_order",
    "report_on_hand",
    "report_on_hand_many",
    "reserve_lines",
    "set_expiry",
    "sync_lag",
]
