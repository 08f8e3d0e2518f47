"""Partner API v1 (deprecated): money as {amount, currency} with a decimal string amount."""
