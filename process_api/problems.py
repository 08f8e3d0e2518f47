"""Problem types of the process layer."""

from __future__ import annotations

from gateway_infra.problems import ProblemType

ORDER_REJECTED = ProblemType("order-rejected", "The order was rejected", 409)
ORDER_NOT_CANCELLABLE = ProblemType(
    "order-not-cancellable", "The order can no longer be cancelled", 409
)
