"""Problem types of the process layer."""

from __future__ import annotations

from gateway_infra.problems import ProblemType

ORDER_REJECTED = ProblemType("order-rejected", "The order was rejected", 409)
ORDER_NOT_CANCELLABLE = ProblemType(
    "order-not-cancellable", "The order can no longer be cancelled", 409
)
ORDER_NOT_RELEASABLE = ProblemType(
    "order-not-releasable", "Only accepted orders are released to the warehouse", 409
)
RELEASE_REFUSED = ProblemType(
    "release-refused", "The ERP or the warehouse refused to release the order", 409
)
ORDER_NOT_SHIPPABLE = ProblemType(
    "order-not-shippable", "The order is not released to the warehouse", 409
)
OVER_SHIPMENT = ProblemType("over-shipment", "More units shipped than ordered", 409)
PACKAGE_CONFLICT = ProblemType(
    "package-conflict", "This package was recorded before with other contents", 409
)
SHIPMENT_INVALID = ProblemType("shipment-invalid", "The shipment does not fit the order", 422)
NOTHING_TO_INVOICE = ProblemType("nothing-to-invoice", "The order has shipped nothing yet", 409)
SETTLEMENT_CONFLICT = ProblemType(
    "settlement-conflict", "Another report with this payout id was imported before", 409
)
PRICE_RULES_VIOLATED = ProblemType(
    "price-rules-violated", "The prices break the channel's price rules", 422
)
PRICE_BOOK_VERSION_PUBLISHED = ProblemType(
    "price-book-version-published",
    "A published price book version never changes; create a new version",
    409,
)
PRICE_BOOK_EXISTS = ProblemType(
    "price-book-exists", "The channel already has a price book in this currency", 409
)
PRICE_BOOK_DRAFT_OPEN = ProblemType(
    "price-book-draft-open", "The price book already has a draft version", 409
)
RETURN_REFUSED = ProblemType("return-refused", "The return was refused", 409)
RETURN_CONFLICT = ProblemType(
    "return-conflict", "This channel return was requested before with other contents", 409
)
RETURN_STATE = ProblemType("return-state", "The return's status does not allow this", 409)
RETURN_INVALID = ProblemType("return-invalid", "The request does not fit the return", 422)
NOTHING_TO_REFUND = ProblemType("nothing-to-refund", "Nothing of the return is refundable", 409)
