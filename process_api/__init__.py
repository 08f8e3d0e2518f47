"""Process APIs for internal apps: order-to-cash, return-to-refund, inventory and prices."""
