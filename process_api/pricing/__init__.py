"""Price governance: versioned price books per channel and currency, checked against the
channel's price rules, published ahead of their effective time, confirmed by the channel."""

from process_api.pricing.port import MAX_SKUS_PER_PRICE_QUERY, PricesPort
from process_api.pricing.service import PricingService

__all__ = ["MAX_SKUS_PER_PRICE_QUERY", "PricesPort", "PricingService"]
