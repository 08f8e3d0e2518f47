"""The WMS system API: warehouses, stock on hand, fulfilment, shipments and returns."""
