"""Adapters that serve the ERP and WMS ports from external systems of record (e.g. Tryton)."""
