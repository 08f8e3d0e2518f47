"""Cross-cutting infrastructure of the gateway: settings, storage, outbox, scheduler, auth, logging.

Every layer may use this package; it imports no layer.
"""
