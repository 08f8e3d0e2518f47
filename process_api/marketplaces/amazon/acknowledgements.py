"""Seller cancellations as Amazon's order acknowledgement feed (POST_ORDER_ACKNOWLEDGEMENT_DATA):
an XML AmazonEnvelope of OrderAcknowledgement messages with StatusCode Failure, one per refused
order, each item with its CancelReason; and the XML processing report Amazon answers with.

Built with the standard library's ElementTree, which escapes text and attributes; Amazon's
report is read through defusedxml (no DTDs, entities or external references). The
vendored models hold no schema of this document (it is Amazon's XSD-described XML feed), so its
structure is what Amazon documents for OrderAcknowledgement, not validated against a schema."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from contracts.order import LineRejection, OrderLine, RejectionReason

FEED_TYPE = "POST_ORDER_ACKNOWLEDGEMENT_DATA"
CONTENT_TYPE = "text/xml; charset=UTF-8"
DOCUMENT_VERSION = "1.01"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

NO_INVENTORY = "NoInventory"
GENERAL_ADJUSTMENT = "GeneralAdjustment"
# Why the gateway refused a line -> Amazon's CancelReason for that item. A line refused for
# want of a product or stock is NoInventory; anything else, and a line refused only because
# another line of the order was, is GeneralAdjustment.
CANCEL_REASONS = {
    RejectionReason.INSUFFICIENT_STOCK: NO_INVENTORY,
    RejectionReason.UNKNOWN_SKU: NO_INVENTORY,
    RejectionReason.INACTIVE_SKU: NO_INVENTORY,
}
# Characters XML 1.0 cannot carry at all, escaped or not.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class CancelledItem:
    item: str
    """Amazon's orderItemId (AmazonOrderItemCode)."""
    reason: str


@dataclass(frozen=True)
class OrderCancellation:
    amazon_order_id: str
    items: Sequence[CancelledItem]


def cancelled_items(
    lines: Iterable[OrderLine], rejections: Iterable[LineRejection]
) -> list[CancelledItem]:
    """Every line of a refused order is cancelled, with the reason of its own refusal."""
    reasons = {r.line_id: CANCEL_REASONS.get(r.reason, GENERAL_ADJUSTMENT) for r in rejections}
    return [
        CancelledItem(line.line_id, reasons.get(line.line_id, GENERAL_ADJUSTMENT)) for line in lines
    ]


def _text(parent: ET.Element, tag: str, value: str) -> ET.Element:
    if _NOT_XML.search(value):
        raise ValueError(f"{tag} {value!r} holds characters XML cannot carry")
    element = ET.SubElement(parent, tag)
    element.text = value
    return element


def cancellation_feed(cancellations: Sequence[OrderCancellation], merchant_id: str) -> bytes:
    """The feed document: message n (1..) cancels the n-th order, UTF-8 with its declaration.
    ValueError when a value holds characters XML 1.0 cannot carry."""
    envelope = ET.Element(
        "AmazonEnvelope", {f"{{{XSI}}}noNamespaceSchemaLocation": "amzn-envelope.xsd"}
    )
    header = ET.SubElement(envelope, "Header")
    _text(header, "DocumentVersion", DOCUMENT_VERSION)
    _text(header, "MerchantIdentifier", merchant_id)
    _text(envelope, "MessageType", "OrderAcknowledgement")
    for number, cancellation in enumerate(cancellations, start=1):
        message = ET.SubElement(envelope, "Message")
        _text(message, "MessageID", str(number))
        acknowledgement = ET.SubElement(message, "OrderAcknowledgement")
        _text(acknowledgement, "AmazonOrderID", cancellation.amazon_order_id)
        _text(acknowledgement, "StatusCode", "Failure")
        for cancelled in cancellation.items:
            item = ET.SubElement(acknowledgement, "Item")
            _text(item, "AmazonOrderItemCode", cancelled.item)
            _text(item, "CancelReason", cancelled.reason)
    document: bytes = ET.tostring(envelope, encoding="UTF-8", xml_declaration=True)
    return document


class UnreadableReport(ValueError):
    """A processing report that is not one Amazon would send (reason in the message)."""


@dataclass
class ProcessingReport:
    complete: bool
    errors: dict[int, list[str]] = field(default_factory=dict)
    """MessageID -> the Error results Amazon gave it (a message not listed was processed)."""
    summary: dict[str, str] = field(default_factory=dict)


def processing_report(content: bytes) -> ProcessingReport:
    """Amazon's XML processing report of an XML feed: AmazonEnvelope / Message /
    ProcessingReport with StatusCode, ProcessingSummary and one Result per message with an
    error or warning."""
    try:
        # defusedxml: no document type declaration, entity or external reference is honoured.
        root = fromstring(content, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise UnreadableReport(f"not a readable XML report: {exc!r}") from exc
    report = root.find("Message/ProcessingReport")
    if root.tag != "AmazonEnvelope" or report is None:
        raise UnreadableReport("no AmazonEnvelope/Message/ProcessingReport")
    parsed = ProcessingReport(complete=(report.findtext("StatusCode") or "").strip() == "Complete")
    summary = report.find("ProcessingSummary")
    if summary is not None:
        parsed.summary = {child.tag: (child.text or "").strip() for child in summary}
    for result in report.iterfind("Result"):
        number = (result.findtext("MessageID") or "").strip()
        if not number.isdigit():
            continue
        errors = parsed.errors.setdefault(int(number), [])
        if (result.findtext("ResultCode") or "").strip() == "Error":
            code = (result.findtext("ResultMessageCode") or "").strip()
            description = (result.findtext("ResultDescription") or "").strip()
            errors.append(f"{code}: {description}" if code else description)
    return parsed
