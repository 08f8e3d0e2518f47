"""The audit log: every operator action and every change of channel profiles, price books and
exception routing, with who (operator or client), when, and the object before and after (a price
book's entries as what changed, SKU by SKU, so that an entry does not grow with the book).

Changes made through the process services are recorded in the transaction that makes them
(`record`); the console records its operators' own actions (sign-in, acknowledging, replaying)
the same way or right after the service call that did the work."""

from process_api.audit.log import AuditLog, record

__all__ = ["AuditLog", "record"]
