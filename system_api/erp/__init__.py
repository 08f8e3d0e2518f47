"""The ERP system API: item master, price list and sales orders."""
