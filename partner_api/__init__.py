"""Partner APIs that marketplaces call: versioned, behind OAuth2, throttling and idempotency."""
