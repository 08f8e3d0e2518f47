"""Marketplace adapters: channels that do not call the partner API are pulled from and pushed to
in their own protocol, each by one adapter behind the port in port.py."""

from process_api.marketplaces.port import MarketplaceAdapter, SyncReport

__all__ = ["MarketplaceAdapter", "SyncReport"]
