"""Order-to-cash: channel orders from intake through ERP validation to acceptance."""
