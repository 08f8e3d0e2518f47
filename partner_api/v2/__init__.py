"""Partner API v2: money in minor units, and quantities per line status."""
