"""Tables the process layer owns (prefix proc_): workflow state of orders and their history."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from gateway_infra.columns import MoneyAmount, UtcDateTime
from gateway_infra.tables import BigId, layer_metadata

metadata = layer_metadata()

orders = Table(
    "proc_orders",
    metadata,
    Column("order_id", String(40), primary_key=True),
    Column("channel", String(64), nullable=False),
    Column("channel_order_id", String(128), nullable=False),
    Column("status", String(24), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total", MoneyAmount(), nullable=False),
    Column("customer", JSON, nullable=True),
    Column("shipping_address", JSON, nullable=True),
    Column("placed_at", UtcDateTime(), nullable=True),
    Column("erp_sales_order_id", String(128), nullable=True),
    Column("origin_correlation_id", String(128), nullable=True),
    # While the channel holds the order as pending: when its reservation lapses.
    Column("pending_expires_at", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # When the buyer's personal data was removed, the retention after closing having passed.
    Column("personal_data_purged_at", UtcDateTime(), nullable=True),
    UniqueConstraint("channel", "channel_order_id", name="uq_proc_orders_channel_order"),
    Index("ix_proc_orders_channel_updated_at", "channel", "updated_at"),
    Index("ix_proc_orders_status_updated_at", "status", "updated_at"),
)

order_lines = Table(
    "proc_order_lines",
    metadata,
    Column("order_id", String(40), ForeignKey("proc_orders.order_id"), primary_key=True),
    Column("line_id", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("sku", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", MoneyAmount(), nullable=False),
    CheckConstraint("quantity > 0", name="quantity_positive"),
)

order_history = Table(
    "proc_order_history",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("order_id", String(40), ForeignKey("proc_orders.order_id"), nullable=False),
    Column("from_status", String(24), nullable=True),
    Column("to_status", String(24), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("correlation_id", String(128), nullable=True),
    Column("reason", Text, nullable=True),
    Index("ix_proc_order_history_order_id", "order_id", "id"),
)

order_rejections = Table(
    "proc_order_rejections",
    metadata,
    Column("order_id", String(40), ForeignKey("proc_orders.order_id"), primary_key=True),
    Column("line_id", String(64), primary_key=True),
    Column("reason", String(32), nullable=False),
    Column("detail", Text, nullable=False),
)

channel_profiles = Table(
    "proc_channel_profiles",
    metadata,
    Column("channel", String(64), primary_key=True),
    Column("profile", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("updated_by", String(128), nullable=False),
)

inventory_positions = Table(
    "proc_inventory_positions",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("on_hand", Integer, nullable=False),
    Column("reserved", Integer, nullable=False),
    Column("on_hand_as_of", UtcDateTime(), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
    CheckConstraint("reserved >= 0", name="reserved_not_negative"),
    CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
)

reservations = Table(
    "proc_reservations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("channel", String(64), nullable=False),
    Column("channel_order_id", String(128), nullable=False),
    Column("line_id", String(64), nullable=False),
    Column("order_id", String(40), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("consumed", Integer, nullable=False, server_default="0"),
    Column("state", String(16), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("channel", "channel_order_id", "line_id", name="uq_proc_reservations_key"),
    CheckConstraint("quantity > 0", name="quantity_positive"),
    CheckConstraint("consumed >= 0 AND consumed <= quantity", name="consumed_within_quantity"),
    Index("ix_proc_reservations_order_id", "order_id"),
    Index("ix_proc_reservations_sku_state", "sku", "state"),
)

published_availability = Table(
    "proc_published_availability",
    metadata,
    Column("channel", String(64), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("quantity", Integer, nullable=False),
    Column("published_at", UtcDateTime(), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("confirmed_at", UtcDateTime(), nullable=True),
    # One B-tree keyed by (channel, SKU) on SQLite, instead of a table and its key's index: a full
    # publication writes a value per channel and SKU. No other index: a channel's sync lag reads
    # its key range (SQLite's planner chose that range even while an index of unconfirmed values
    # existed, which every publication had to keep up).
    sqlite_with_rowid=False,
)

exceptions = Table(
    "proc_exceptions",
    metadata,
    Column("exception_id", String(40), primary_key=True),
    Column("workflow", String(40), nullable=False),
    Column("code", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("channel", String(64), nullable=True),
    Column("detail", Text, nullable=False),
    Column("object_ids", JSON, nullable=False),
    Column("money_at_risk", MoneyAmount(), nullable=True),
    Column("currency", String(3), nullable=True),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("due_at", UtcDateTime(), nullable=True),
    Column("owner_team", String(64), nullable=True),
    Column("escalations", Integer, nullable=False, server_default="0"),
    # The step that failed, as a scheduler timer (kind, key, payload), so "retry" re-runs it.
    Column("retry_kind", String(64), nullable=True),
    Column("retry_key", String(200), nullable=True),
    Column("retry_payload", JSON, nullable=True),
    # Set while the exception is open: the same problem on the same subject opens it only once.
    Column("open_key", String(320), nullable=True),
    Column("occurrences", Integer, nullable=False, server_default="1"),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("open_key", name="uq_proc_exceptions_open_key"),
    Index("ix_proc_exceptions_status_channel", "status", "channel"),
    Index("ix_proc_exceptions_subject", "subject"),
)

exception_history = Table(
    "proc_exception_history",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("exception_id", String(40), ForeignKey("proc_exceptions.exception_id"), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("correlation_id", String(128), nullable=True),
    Column("note", Text, nullable=True),
    Index("ix_proc_exception_history_exception_id", "exception_id", "id"),
)

# ---------------------------------------------------------------- fulfilment and settlement

fulfilments = Table(
    "proc_fulfilments",
    metadata,
    # One release per order: the intent is recorded first, the WMS's fulfilment id once it answers.
    Column("order_id", String(40), ForeignKey("proc_orders.order_id"), primary_key=True),
    Column("warehouse", String(64), nullable=False),
    Column("fulfilment_id", String(128), nullable=True),
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("released_at", UtcDateTime(), nullable=True),
)

shipment_packages = Table(
    "proc_shipment_packages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("order_id", String(40), ForeignKey("proc_orders.order_id"), nullable=False),
    Column("package_reference", String(128), nullable=False),
    Column("shipment_id", String(128), nullable=False),
    Column("warehouse", String(64), nullable=False),
    Column("carrier", String(64), nullable=False),
    Column("tracking_number", String(128), nullable=False),
    # [{"line_id", "sku", "quantity"}], in the order the package listed them.
    Column("lines", JSON, nullable=False),
    Column("shipped_at", UtcDateTime(), nullable=False),
    # pending: reported, not yet confirmed by the WMS; confirmed: recorded, stock consumed.
    Column("state", String(16), nullable=False),
    Column("recorded_by", String(128), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("confirmed_at", UtcDateTime(), nullable=True),
    UniqueConstraint("order_id", "package_reference", name="uq_proc_shipment_packages_package"),
)

invoices = Table(
    "proc_invoices",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("order_id", String(40), ForeignKey("proc_orders.order_id"), nullable=False),
    # invoice, or credit_note (written by return-to-refund).
    Column("kind", String(16), nullable=False),
    # The reference the ERP posted it under: the same reference never posts twice.
    Column("reference", String(200), nullable=False),
    Column("document_id", String(128), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total", MoneyAmount(), nullable=False),
    # [{"line_id", "sku", "quantity", "unit_price", "amount"}] as the ERP posted them.
    Column("lines", JSON, nullable=False),
    Column("posted_at", UtcDateTime(), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    UniqueConstraint("kind", "reference", name="uq_proc_invoices_reference"),
    Index("ix_proc_invoices_order_id", "order_id", "kind"),
)

settlements = Table(
    "proc_settlements",
    metadata,
    Column("channel", String(64), primary_key=True),
    Column("payout_id", String(128), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("period_start", UtcDateTime(), nullable=False),
    Column("period_end", UtcDateTime(), nullable=False),
    Column("total_net", MoneyAmount(), nullable=False),
    # The report as imported, and its digest: a re-import must be the same report.
    Column("report", JSON, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("matched", Integer, nullable=False),
    Column("mismatched", Integer, nullable=False),
    Column("imported_by", String(128), nullable=False),
    Column("imported_at", UtcDateTime(), nullable=False),
)

settlement_lines = Table(
    "proc_settlement_lines",
    metadata,
    Column("channel", String(64), primary_key=True),
    Column("payout_id", String(128), primary_key=True),
    Column("position", Integer, primary_key=True),
    # The gateway order the line was matched to (None when the order is unknown).
    Column("order_id", String(40), nullable=True),
    Column("channel_order_id", String(128), nullable=True),
    Column("gross", MoneyAmount(), nullable=False),
    Column("fees", MoneyAmount(), nullable=False),
    Column("refunds", MoneyAmount(), nullable=False),
    Column("net", MoneyAmount(), nullable=False),
    Column("invoiced", MoneyAmount(), nullable=True),
    Column("refunded", MoneyAmount(), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("code", String(64), nullable=True),
    Column("detail", Text, nullable=True),
    Column("exception_id", String(40), nullable=True),
    ForeignKeyConstraint(
        ["channel", "payout_id"],
        ["proc_settlements.channel", "proc_settlements.payout_id"],
        name="fk_proc_settlement_lines_settlement",
    ),
    Index("ix_proc_settlement_lines_order_id", "order_id"),
)

# ---------------------------------------------------------------- price books

price_books = Table(
    "proc_price_books",
    metadata,
    Column("book_id", String(40), primary_key=True),
    Column("channel", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(128), nullable=False),
    UniqueConstraint("channel", "currency", name="uq_proc_price_books_channel_currency"),
)

price_book_versions = Table(
    "proc_price_book_versions",
    metadata,
    Column("book_id", String(40), ForeignKey("proc_price_books.book_id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    # draft: editable; published: immutable (database triggers refuse any change to it).
    Column("status", String(16), nullable=False),
    # The book's id while the version is a draft: one open draft per book.
    Column("draft_key", String(40), nullable=True),
    Column("based_on", Integer, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("published_at", UtcDateTime(), nullable=True),
    Column("published_by", String(128), nullable=True),
    UniqueConstraint("draft_key", name="uq_proc_price_book_versions_draft_key"),
    CheckConstraint(
        "(status = 'draft' AND draft_key IS NOT NULL AND published_at IS NULL)"
        " OR (status = 'published' AND draft_key IS NULL AND published_at IS NOT NULL)",
        name="draft_or_published",
    ),
)

price_entries = Table(
    "proc_price_entries",
    metadata,
    Column("book_id", String(40), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("sku", String(64), primary_key=True),
    # Taken from the ERP's item master (list price), never typed in by a caller.
    Column("base_price", MoneyAmount(), nullable=False),
    Column("base_price_read_at", UtcDateTime(), nullable=False),
    Column("floor_price", MoneyAmount(), nullable=True),
    Column("unit_cost", MoneyAmount(), nullable=True),
    ForeignKeyConstraint(
        ["book_id", "version"],
        ["proc_price_book_versions.book_id", "proc_price_book_versions.version"],
        name="fk_proc_price_entries_version",
    ),
)

price_promotions = Table(
    "proc_price_promotions",
    metadata,
    Column("book_id", String(40), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("promotion_id", String(128), primary_key=True),
    Column("price", MoneyAmount(), nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("ends_at", UtcDateTime(), nullable=False),
    ForeignKeyConstraint(
        ["book_id", "version", "sku"],
        ["proc_price_entries.book_id", "proc_price_entries.version", "proc_price_entries.sku"],
        name="fk_proc_price_promotions_entry",
    ),
    CheckConstraint("ends_at > starts_at", name="window_not_empty"),
)

price_publications = Table(
    "proc_price_publications",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("book_id", String(40), nullable=False),
    Column("version", Integer, nullable=False),
    Column("channel", String(64), nullable=False),
    Column("sku", String(64), nullable=False),
    # base_price, promotion, promotion_withdrawn or entry_removed.
    Column("change", String(24), nullable=False),
    Column("promotion_id", String(128), nullable=True),
    # When the change matters to shoppers, and when it is sent (that minus the lead time).
    Column("effective_at", UtcDateTime(), nullable=False),
    Column("due_at", UtcDateTime(), nullable=False),
    # scheduled -> sent -> confirmed; scheduled -> cancelled when a later version replaces it.
    Column("state", String(16), nullable=False),
    Column("data", JSON, nullable=False),
    Column("event_id", String(36), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
    Column("confirmed_at", UtcDateTime(), nullable=True),
    Index("ix_proc_price_publications_channel_state", "channel", "state", "sku"),
    Index("ix_proc_price_publications_promotion", "book_id", "sku", "promotion_id"),
)

# ---------------------------------------------------------------- returns and refunds

returns = Table(
    "proc_returns",
    metadata,
    Column("return_id", String(40), primary_key=True),
    Column("order_id", String(40), ForeignKey("proc_orders.order_id"), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("channel_return_id", String(128), nullable=False),
    Column("status", String(24), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("value", MoneyAmount(), nullable=False),
    # [{"line_id", "code", "detail"}]: every reason a refused return was refused.
    Column("refusals", JSON, nullable=False),
    Column("warehouse", String(64), nullable=True),
    # Steps recorded for the WMS and not confirmed by it yet (retried by a timer).
    Column("pending_receipt", JSON, nullable=True),
    Column("pending_inspection", JSON, nullable=True),
    Column("receipt_id", String(128), nullable=True),
    Column("received_at", UtcDateTime(), nullable=True),
    Column("inspected_at", UtcDateTime(), nullable=True),
    # Set when the channel refunded its customer on its own.
    Column("channel_refund_id", String(128), nullable=True),
    Column("channel_refund_amount", MoneyAmount(), nullable=True),
    Column("channel_refunded_at", UtcDateTime(), nullable=True),
    Column("origin_correlation_id", String(128), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("channel", "channel_return_id", name="uq_proc_returns_channel_return"),
    Index("ix_proc_returns_order_id", "order_id"),
    Index("ix_proc_returns_created_at", "created_at"),
)

return_lines = Table(
    "proc_return_lines",
    metadata,
    Column("return_id", String(40), ForeignKey("proc_returns.return_id"), primary_key=True),
    Column("line_id", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("sku", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    # The order line's unit price (None for a line the order does not have: a refused return).
    Column("unit_price", MoneyAmount(), nullable=True),
    Column("reason", Text, nullable=False),
    Column("refund_timing", String(24), nullable=True),
    Column("quantity_received", Integer, nullable=True),
    # [{"grade", "disposition", "quantity", "note"}] as the WMS recorded them.
    Column("inspections", JSON, nullable=True),
    CheckConstraint("quantity > 0", name="quantity_positive"),
)

return_history = Table(
    "proc_return_history",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("return_id", String(40), ForeignKey("proc_returns.return_id"), nullable=False),
    Column("from_status", String(24), nullable=True),
    Column("to_status", String(24), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("correlation_id", String(128), nullable=True),
    Column("reason", Text, nullable=True),
    Index("ix_proc_return_history_return_id", "return_id", "id"),
)

return_refunds = Table(
    "proc_return_refunds",
    metadata,
    Column("refund_id", String(64), primary_key=True),
    Column("return_id", String(40), ForeignKey("proc_returns.return_id"), nullable=False),
    Column("order_id", String(40), nullable=False),
    # immediate, on_receipt, approved or channel: at most one of each per return.
    Column("kind", String(16), nullable=False),
    # awaiting_inspection, pending (credit note due) or posted.
    Column("state", String(24), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", MoneyAmount(), nullable=False),
    # [{"line_id", "quantity", "amount"}]
    Column("lines", JSON, nullable=False),
    # The ERP's credit notes: [{"credit_note_id", "invoice_id", "reference", "lines", "total"}].
    Column("credit_notes", JSON, nullable=False),
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("posted_at", UtcDateTime(), nullable=True),
    UniqueConstraint("return_id", "kind", name="uq_proc_return_refunds_kind"),
    Index("ix_proc_return_refunds_order_id", "order_id"),
)

# ---------------------------------------------------------------- Amazon marketplace adapter

amazon_order_cursors = Table(
    "proc_amazon_order_cursors",
    metadata,
    # Orders updated at or after this time are still to be pulled; a page token while a pull
    # that began at that time is part way through its pages.
    Column("channel", String(64), primary_key=True),
    Column("updated_after", UtcDateTime(), nullable=False),
    Column("pagination_token", Text, nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)

amazon_orders = Table(
    "proc_amazon_orders",
    metadata,
    # The last fulfilment state of each Amazon order the gateway acted on: one canonical order
    # per Amazon order id, however often it is pulled.
    Column("channel", String(64), primary_key=True),
    Column("amazon_order_id", String(64), primary_key=True),
    Column("order_id", String(40), nullable=True),
    Column("fulfillment_status", String(32), nullable=False),
    Column("last_updated", UtcDateTime(), nullable=True),
    Column("seen_at", UtcDateTime(), nullable=False),
)

amazon_package_confirmations = Table(
    "proc_amazon_package_confirmations",
    metadata,
    # The package's row id is its packageReferenceId on Amazon: stable and numeric, so a resend
    # replaces that package. The fingerprint is of the confirmation sent.
    Column("package_id", BigId, ForeignKey("proc_shipment_packages.id"), primary_key=True),
    Column("order_id", String(40), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("confirmed_at", UtcDateTime(), nullable=False),
)

amazon_feeds = Table(
    "proc_amazon_feeds",
    metadata,
    Column("feed_id", String(128), primary_key=True),
    Column("channel", String(64), nullable=False),
    Column("document_id", String(256), nullable=False),
    # JSON_LISTINGS_FEED (availability, prices) or POST_ORDER_ACKNOWLEDGEMENT_DATA (seller
    # cancellations of orders the gateway refused).
    Column("feed_type", String(64), nullable=False),
    # submitted -> done | partly_refused (report read, each message confirmed or raised)
    # | failed (cancelled or fatal: nothing applied).
    Column("state", String(16), nullable=False),
    # [{"message_id", "sku", "kind", "reference"}] of a listings feed;
    # [{"message_id", "kind": "cancellation", "order_id", "amazon_order_id"}] of a cancellation.
    Column("messages", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("detail", Text, nullable=True),
    Index("ix_proc_amazon_feeds_channel_state", "channel", "state"),
)

amazon_cancellations = Table(
    "proc_amazon_cancellations",
    metadata,
    # The seller cancellation of each Amazon order the gateway refused, recorded with the
    # refusal: to_send -> sending (claimed by one sender at updated_at) -> submitted (in
    # feed_id) -> accepted | refused; a feed that failed puts it back to to_send. One per order,
    # so it is never sent for another reason.
    Column("order_id", String(40), primary_key=True),
    Column("channel", String(64), nullable=False),
    Column("amazon_order_id", String(64), nullable=False),
    # [{"item": orderItemId, "reason": CancelReason}]
    Column("items", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("feed_id", String(128), nullable=True),
    Column("detail", Text, nullable=True),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_proc_amazon_cancellations_channel_state", "channel", "state"),
)

# ---------------------------------------------------------------- ops console and audit log

operators = Table(
    "proc_operators",
    metadata,
    Column("operator_id", String(40), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("display_name", String(200), nullable=False),
    # argon2id hash (PHC string), never the password.
    Column("password_hash", String(255), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("disabled_at", UtcDateTime(), nullable=True),
    UniqueConstraint("username", name="uq_proc_operators_username"),
)

operator_sessions = Table(
    "proc_operator_sessions",
    metadata,
    # SHA-256 of the cookie's random token: a copy of the table does not let anyone sign in.
    Column("session_digest", String(64), primary_key=True),
    Column("operator_id", String(40), ForeignKey("proc_operators.operator_id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Index("ix_proc_operator_sessions_operator_id", "operator_id"),
    Index("ix_proc_operator_sessions_expires_at", "expires_at"),
)

audit_log = Table(
    "proc_audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    # operator:<username>, client:<client_id>, config, command-line, ...
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("channel", String(64), nullable=True),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("correlation_id", String(128), nullable=True),
    Index("ix_proc_audit_log_subject", "subject", "id"),
    Index("ix_proc_audit_log_actor", "actor", "id"),
)
