"""One order's journey across requests: its status changes and events, with their correlation."""
