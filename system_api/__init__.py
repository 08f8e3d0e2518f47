"""System APIs: ERP and WMS capabilities over the systems of record, one adapter per backend."""
