"""Return-to-refund: a channel's return is authorized by its channel's policy, received and
inspected by the warehouse, and refunded through an ERP credit note only when that policy says so
(after inspection by default); refunds a channel made on its own are reconciled afterwards.

The WMS owns receipts and inspections and the ERP owns credit notes: the gateway records either
only once its system of record has confirmed it. While one of them cannot be reached, the step is
kept durably (a pending receipt, inspection or refund) and a scheduler timer retries it; what no
retry can fix becomes an exception for a person.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from contracts import CreditNote, CreditNoteLine, Order
from contracts.channel import ChannelProfile, RefundTiming
from contracts.erp import CreditNoteRequest
from contracts.exceptions import Severity
from contracts.refund import RefundKind, RefundState
from contracts.returns import (
    ChannelRefund,
    Disposition,
    InspectionGrade,
    InspectionResult,
    Return,
    ReturnStatus,
    WaitingStep,
)
from contracts.wms import (
    InspectionLine,
    InspectionRequest,
    ReturnReceiptLineIn,
    ReturnReceiptRequest,
)
from gateway_infra.database import for_update
from gateway_infra.problems import ProblemError
from gateway_infra.scheduler import DueTimer, Scheduler, cancel, schedule
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api.exceptions import StepSupervisor, open_exception
from process_api.fulfilment import repository as fulfilment_repo
from process_api.fulfilment.models import PackageState
from process_api.inventory.service import InventoryService
from process_api.order_to_cash import repository as orders_repo
from process_api.order_to_cash.paging import decode_cursor, encode_cursor
from process_api.problems import (
    NOTHING_TO_REFUND,
    RETURN_CONFLICT,
    RETURN_INVALID,
    RETURN_STATE,
)
from process_api.returns import policy as rules
from process_api.returns import reconciliation
from process_api.returns import repository as repo
from process_api.returns.models import (
    BACKEND_RETRY,
    DEFAULT_WAREHOUSE,
    FIRST_RETRY_AFTER,
    INSPECT_TIMER,
    RECEIVE_TIMER,
    REFUND_TIMER,
    SOURCE,
    WORKFLOW,
    ApproveRequest,
    InspectRequest,
    ReceiveRequest,
    ReturnCreate,
    ReturnList,
    ReturnsReconciliation,
    money,
)
from process_api.returns.port import Outcome, UnknownOrder, UnknownReturn
from process_api.tables import orders
from process_api.text import clip
from system_api.erp.port import ErpPort
from system_api.errors import BackendUnavailable
from system_api.wms.port import WmsPort

log = logging.getLogger("gateway.returns")

ProfileLookup = Callable[[str], Awaitable[ChannelProfile | None]]
"""The channel's profile (cached), or None for a channel without one."""

GATEWAY = "gateway"
RECEIVED_OR_LATER = frozenset(
    {
        ReturnStatus.RECEIVED,
        ReturnStatus.INSPECTED,
        ReturnStatus.REFUND_APPROVED,
        ReturnStatus.REFUNDED,
        ReturnStatus.CHANNEL_REFUNDED,
        ReturnStatus.CLOSED,
    }
)
CLOSABLE = frozenset({ReturnStatus.INSPECTED, ReturnStatus.REFUNDED, ReturnStatus.CHANNEL_REFUNDED})
_MAX_REFERENCE = 128


class NotInvoicedYet(Exception):
    """A refund's units are not invoiced yet, so the ERP has nothing to credit; retried."""


class StillPending(Exception):
    """A refund's credit note could not be posted this time; retried."""


@dataclass(frozen=True)
class _Part:
    """One credit note to post: the units of a refund against one invoice."""

    reference: str
    request: CreditNoteRequest


@dataclass(frozen=True)
class _CreditPlan:
    refund_id: str
    parts: list[_Part]


class ReturnsService:
    """Returns from the channel's request to the refund, for the process API and timers."""

    def __init__(
        self,
        store: Store,
        erp: ErpPort,
        wms: WmsPort,
        inventory: InventoryService,
        *,
        profiles: ProfileLookup | None = None,
        warehouse: str = DEFAULT_WAREHOUSE,
    ) -> None:
        self.store = store
        self.erp = erp
        self.wms = wms
        self.inventory = inventory
        self.profiles = profiles
        self.warehouse = warehouse

    def register_timers(self, scheduler: Scheduler) -> None:
        for kind, handler in (
            (RECEIVE_TIMER, self._on_receive_timer),
            (INSPECT_TIMER, self._on_inspect_timer),
            (REFUND_TIMER, self._on_refund_timer),
        ):
            # A step that gives up opens an exception whose `retry` action runs it again; the
            # exception resolves once a run succeeds.
            watched = StepSupervisor(self.store, workflow="returns").watch(handler)
            scheduler.register(kind, watched, retry=BACKEND_RETRY, on_give_up=self._gave_up)

    # ------------------------------------------------------------ reading

    async def get(self, return_id: str) -> Return | None:
        row = await self.store.read(lambda conn: repo.load_return(conn, return_id))
        return None if row is None else repo.to_contract(row)

    async def _require(self, return_id: str) -> Return:
        found = await self.get(return_id)
        if found is None:
            raise UnknownReturn(return_id)
        return found

    async def list(
        self,
        *,
        channel: str | None = None,
        statuses: Sequence[ReturnStatus] = (),
        order_id: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> ReturnList:
        """Returns by last change, filtered, one page at a time."""
        after = decode_cursor(cursor) if cursor else None
        rows = await self.store.read(
            lambda conn: repo.list_returns(
                conn,
                channel=channel,
                statuses=statuses,
                order_id=order_id,
                after=after,
                limit=limit + 1,
            )
        )
        page = rows[:limit]
        next_cursor = (
            encode_cursor(page[-1].updated_at, page[-1].return_id) if len(rows) > limit else None
        )
        return ReturnList(items=[repo.to_contract(row) for row in page], next_cursor=next_cursor)

    async def reconciliation(
        self, *, start: datetime, end: datetime, channel: str | None = None
    ) -> ReturnsReconciliation:
        now = self.store.clock.now()
        return await self.store.read(
            lambda conn: reconciliation.reconcile(
                conn, start=start, end=end, channel=channel, now=now
            )
        )

    # ------------------------------------------------------------ request and authorization

    async def create(self, request: ReturnCreate, *, actor: str) -> Outcome:
        """Record the channel's return once per (channel, channel_return_id) and decide it by the
        channel's policy: authorized, or refused with every reason. Lines the policy refunds at
        once have their credit note posted right away (or by a timer while the ERP is down)."""
        profile = None if self.profiles is None else await self.profiles(request.channel)
        policy = rules.ReturnPolicy.of(profile)
        try:
            return_id, created = await self.store.write(
                lambda uow: self._create(uow, request, policy, actor)
            )
        except IntegrityError:
            # A concurrent request for the same channel return won the insert: see what it did.
            return_id, created = await self.store.write(
                lambda uow: self._create(uow, request, policy, actor)
            )
        if created:
            await self._post_quietly(return_id)
        return Outcome(await self._require(return_id), created=created)

    def _create(
        self, uow: UnitOfWork, request: ReturnCreate, policy: rules.ReturnPolicy, actor: str
    ) -> tuple[str, bool]:
        conn = uow.conn
        known = repo.find_return_id(conn, request.channel, request.channel_return_id)
        if known is not None:
            row = repo.load_return(conn, known)
            assert row is not None
            if row.order_id != request.order_id or _line_key(
                (line.line_id, line.sku, line.quantity) for line in row.lines
            ) != _line_key((line.line_id, line.sku, line.quantity) for line in request.lines):
                raise ProblemError(
                    RETURN_CONFLICT,
                    f"channel return {request.channel_return_id!r} was requested before as "
                    f"return {known} with other lines; a new return needs its own id",
                    return_id=known,
                )
            return known, False
        order = _lock_order(conn, request.order_id)
        if order.channel != request.channel:
            raise UnknownOrder(request.order_id)
        refusals = rules.refusals(
            order,
            list(request.lines),
            shipped=_shipped_lines(conn, order.order_id),
            returned=repo.returned_quantities(conn, order.order_id),
            policy=policy,
            now=uow.now,
        )
        prices = {line.line_id: line.unit_price.amount for line in order.lines}
        lines: list[dict[str, Any]] = []
        for line in request.lines:
            price = prices.get(line.line_id)
            timing = None if refusals or price is None else policy.timing_for(price * line.quantity)
            lines.append(
                {
                    "line_id": line.line_id,
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "reason": line.reason,
                    "unit_price": price,
                    "refund_timing": None if timing is None else timing.value,
                }
            )
        return_id = repo.new_return_id()
        repo.insert_return(
            uow,
            return_id=return_id,
            order_id=order.order_id,
            channel=order.channel,
            channel_return_id=request.channel_return_id,
            currency=order.currency,
            lines=lines,
            refusals=refusals,
            actor=actor,
        )
        if refusals:
            repo.move_return(
                uow,
                return_id,
                ReturnStatus.REQUESTED,
                ReturnStatus.REFUSED,
                actor=GATEWAY,
                reason=clip("; ".join(r.detail for r in refusals)),
            )
            self._emit(
                uow,
                "return.refused",
                return_id,
                order,
                request.channel_return_id,
                refusals=[r.model_dump(mode="json") for r in refusals],
            )
            return return_id, True
        timings = sorted({str(line["refund_timing"]) for line in lines})
        repo.move_return(
            uow,
            return_id,
            ReturnStatus.REQUESTED,
            ReturnStatus.AUTHORIZED,
            actor=GATEWAY,
            reason=f"channel policy: refund {', '.join(timings)}",
        )
        self._emit(
            uow,
            "return.authorized",
            return_id,
            order,
            request.channel_return_id,
            lines=[
                {
                    "line_id": line["line_id"],
                    "sku": line["sku"],
                    "quantity": line["quantity"],
                    "refund_timing": line["refund_timing"],
                }
                for line in lines
            ],
        )
        row = _require_row(conn, return_id)
        immediate = [
            _credit_line(line.line_id, line.quantity, line.unit_price, row.currency)
            for line in row.lines
            if line.refund_timing is RefundTiming.IMMEDIATE
        ]
        if immediate:
            repo.insert_refund(
                uow, row, RefundKind.IMMEDIATE, immediate, state=RefundState.PENDING, actor=GATEWAY
            )
            _schedule(uow, REFUND_TIMER, return_id)
        return return_id, True

    # ------------------------------------------------------------ goods on their way

    async def mark_in_transit(self, return_id: str, *, actor: str, note: str | None) -> Outcome:
        """authorized -> in_transit (a carrier scanned the parcel); asking again changes nothing."""
        await self.store.write(lambda uow: self._in_transit(uow, return_id, actor, note))
        return Outcome(await self._require(return_id))

    def _in_transit(self, uow: UnitOfWork, return_id: str, actor: str, note: str | None) -> None:
        row = _lock(uow.conn, return_id)
        if row.status is ReturnStatus.IN_TRANSIT or row.status in RECEIVED_OR_LATER:
            return
        if row.status is not ReturnStatus.AUTHORIZED:
            raise _state_error(row, "only an authorized return goes in transit")
        repo.move_return(
            uow, return_id, row.status, ReturnStatus.IN_TRANSIT, actor=actor, reason=note
        )
        self._emit_row(uow, "return.in_transit", row)

    # ------------------------------------------------------------ receipt

    async def receive(self, return_id: str, request: ReceiveRequest, *, actor: str) -> Outcome:
        """Record what arrived at the warehouse once: the WMS records the receipt (by the return
        id, so a retry never receives twice), then the return is received and lines refunded
        on receipt are credited. While the WMS is down the receipt waits (202) for a timer."""
        await self.store.write(lambda uow: self._receipt_intent(uow, return_id, request, actor))
        waiting = await self._send_receipt(return_id, raise_refusal=True)
        if not waiting:
            await self._post_quietly(return_id)
        return Outcome(await self._require(return_id), waiting=waiting)

    def _receipt_intent(
        self, uow: UnitOfWork, return_id: str, request: ReceiveRequest, actor: str
    ) -> None:
        conn = uow.conn
        row = _lock(conn, return_id)
        asked = {line.line_id: line.quantity_received for line in request.lines}
        problems = [
            f"the return has no line {line_id!r}" for line_id in asked if row.line(line_id) is None
        ]
        problems += [
            f"line {line.line_id!r}: {asked[line.line_id]} units received, "
            f"{line.quantity} announced"
            for line in row.lines
            if asked.get(line.line_id, 0) > line.quantity
        ]
        if problems:
            raise ProblemError(RETURN_INVALID, "; ".join(problems))
        quantities = {line.line_id: asked.get(line.line_id, 0) for line in row.lines}
        if row.received_at is not None:
            recorded = {line.line_id: line.quantity_received or 0 for line in row.lines}
            if recorded == quantities:
                return
            raise _state_error(row, "its receipt was recorded before with other quantities")
        if row.pending_receipt is not None:
            if row.pending_receipt["lines"] == quantities:
                return
            raise _state_error(row, "a receipt with other quantities is waiting for the WMS")
        if row.status not in (ReturnStatus.AUTHORIZED, ReturnStatus.IN_TRANSIT):
            raise _state_error(row, "only an authorized return is received")
        release = fulfilment_repo.fulfilment_of(conn, row.order_id)
        warehouse = request.warehouse or (release.warehouse if release else self.warehouse)
        repo.update_return(
            uow,
            return_id,
            warehouse=warehouse,
            pending_receipt={"warehouse": warehouse, "lines": quantities, "actor": actor},
        )
        _schedule(uow, RECEIVE_TIMER, return_id)

    async def _send_receipt(
        self, return_id: str, *, raise_unavailable: bool = False, raise_refusal: bool = False
    ) -> bool:
        """Have the WMS record the pending receipt; true while it waits for the WMS."""
        row = await self.store.read(lambda conn: repo.load_return(conn, return_id))
        if row is None or row.pending_receipt is None:
            return False
        pending = row.pending_receipt
        quantities: dict[str, int] = {str(k): int(v) for k, v in pending["lines"].items()}
        lines = [
            ReturnReceiptLineIn(line_id=line.line_id, sku=line.sku, quantity=units)
            for line in row.lines
            if (units := quantities.get(line.line_id, 0)) > 0
        ]
        receipt_id: str | None = None
        received_at: datetime | None = None
        if lines:  # an empty parcel: nothing for the warehouse to book
            try:
                receipt = await self.wms.receive_return(
                    ReturnReceiptRequest(
                        rma_reference=return_id,
                        order_reference=row.order_id,
                        warehouse=str(pending["warehouse"]),
                        lines=lines,
                    )
                )
            except BackendUnavailable as exc:
                log.warning("receipt deferred", extra={"return_id": return_id, "error": str(exc)})
                if raise_unavailable:
                    raise
                return True
            except ProblemError as exc:
                refusal = exc
                await self.store.write(
                    lambda uow: self._step_refused(uow, return_id, "receipt", refusal)
                )
                if raise_refusal:
                    raise
                return False
            # The WMS's receipt is the record: what it booked under this return is what arrived.
            quantities = {line.line_id: line.quantity for line in receipt.lines}
            receipt_id, received_at = receipt.receipt_id, receipt.received_at
        await self.store.write(
            lambda uow: self._record_receipt(
                uow, return_id, quantities, receipt_id, received_at, str(pending["actor"])
            )
        )
        return False

    def _record_receipt(
        self,
        uow: UnitOfWork,
        return_id: str,
        quantities: dict[str, int],
        receipt_id: str | None,
        received_at: datetime | None,
        actor: str,
    ) -> None:
        conn = uow.conn
        row = _lock(conn, return_id)
        if row.pending_receipt is None:
            return  # recorded by a concurrent request or timer
        for line in row.lines:
            repo.update_line(
                uow, return_id, line.line_id, quantity_received=quantities.get(line.line_id, 0)
            )
        cancel(conn, kind=RECEIVE_TIMER, key=return_id)
        units = sum(quantities.values())
        repo.move_return(
            uow,
            return_id,
            row.status,
            ReturnStatus.RECEIVED,
            actor=actor,
            reason=(
                f"receipt {receipt_id} at {row.warehouse}: {units} unit(s)"
                if receipt_id
                else "nothing arrived"
            ),
            pending_receipt=None,
            receipt_id=receipt_id,
            received_at=received_at or uow.now,
        )
        self._emit_row(
            uow,
            "return.received",
            row,
            receipt_id=receipt_id,
            warehouse=row.warehouse,
            lines=[{"line_id": k, "quantity_received": v} for k, v in sorted(quantities.items())],
        )
        if row.channel_refund is not None:
            return  # the channel paid already: nothing more goes out before inspection
        on_receipt = [
            _credit_line(line.line_id, units, line.unit_price, row.currency)
            for line in row.lines
            if line.refund_timing is RefundTiming.ON_RECEIPT
            and (units := quantities.get(line.line_id, 0)) > 0
        ]
        if on_receipt:
            repo.insert_refund(
                uow, row, RefundKind.ON_RECEIPT, on_receipt, state=RefundState.PENDING, actor=actor
            )
            _schedule(uow, REFUND_TIMER, return_id)

    # ------------------------------------------------------------ inspection

    async def inspect(self, return_id: str, request: InspectRequest, *, actor: str) -> Outcome:
        """Record the grade and disposition of every received unit once: the WMS records the
        inspection (restocked units become sellable, others never) and the new on-hand of
        restocked SKUs is reported so their availability is republished. Then what the policy
        and the channel's own refund call for follows: claims for bad goods the channel refunded,
        the credit of the channel's refund. While the WMS is down the inspection waits (202)."""
        await self.store.write(lambda uow: self._inspection_intent(uow, return_id, request, actor))
        waiting = await self._send_inspection(return_id, raise_refusal=True)
        if not waiting:
            await self._post_quietly(return_id)
        return Outcome(await self._require(return_id), waiting=waiting)

    def _inspection_intent(
        self, uow: UnitOfWork, return_id: str, request: InspectRequest, actor: str
    ) -> None:
        row = _lock(uow.conn, return_id)
        results = [result.model_dump(mode="json") for result in request.lines]
        if row.inspected_at is not None:
            recorded = [r.model_dump(mode="json") for line in row.lines for r in line.inspections]
            if _canonical(recorded) == _canonical(results):
                return
            raise _state_error(row, "it was inspected before with other results")
        if row.pending_inspection is not None:
            if _canonical(row.pending_inspection["lines"]) == _canonical(results):
                return
            raise _state_error(row, "an inspection with other results is waiting for the WMS")
        if row.status is not ReturnStatus.RECEIVED:
            raise _state_error(row, "only a received return is inspected")
        inspected: dict[str, int] = defaultdict(int)
        problems: list[str] = []
        for result in request.lines:
            if row.line(result.line_id) is None:
                problems.append(f"the return has no line {result.line_id!r}")
            inspected[result.line_id] += result.quantity
        for line in row.lines:
            received = line.quantity_received or 0
            if inspected.get(line.line_id, 0) != received:
                problems.append(
                    f"line {line.line_id!r}: {received} unit(s) received, "
                    f"{inspected.get(line.line_id, 0)} inspected; grade every received unit"
                )
        if problems:
            raise ProblemError(RETURN_INVALID, "; ".join(problems))
        repo.update_return(uow, return_id, pending_inspection={"lines": results, "actor": actor})
        _schedule(uow, INSPECT_TIMER, return_id)

    async def _send_inspection(
        self, return_id: str, *, raise_unavailable: bool = False, raise_refusal: bool = False
    ) -> bool:
        """Have the WMS record the pending inspection and report the stock it restocked; true
        while it waits for the WMS."""
        row = await self.store.read(lambda conn: repo.load_return(conn, return_id))
        if row is None or row.pending_inspection is None:
            return False
        results = [InspectionResult.model_validate(r) for r in row.pending_inspection["lines"]]
        actor = str(row.pending_inspection["actor"])
        skus = {line.line_id: line.sku for line in row.lines}
        restocked = sorted(
            {skus[r.line_id] for r in results if r.disposition is Disposition.RESTOCK}
        )
        counts: dict[str, int] = {}
        try:
            if results:
                await self.wms.record_inspection(
                    return_id,
                    InspectionRequest(
                        lines=[
                            InspectionLine(
                                line_id=r.line_id,
                                sku=skus[r.line_id],
                                grade=r.grade,
                                disposition=r.disposition,
                                quantity=r.quantity,
                                note=r.note,
                            )
                            for r in results
                        ]
                    ),
                )
            for sku in restocked:
                levels = await self.wms.stock_levels(sku=sku)
                counts[sku] = sum(level.on_hand for level in levels if level.sku == sku)
        except BackendUnavailable as exc:
            log.warning("inspection deferred", extra={"return_id": return_id, "error": str(exc)})
            if raise_unavailable:
                raise
            return True
        except ProblemError as exc:
            refusal = exc
            await self.store.write(
                lambda uow: self._step_refused(uow, return_id, "inspection", refusal)
            )
            if raise_refusal:
                raise
            return False
        if counts:
            # Restocked units are on-hand again: the warehouse's count, and what it changes
            # for every channel, is published before the inspection is recorded (a retry
            # reports the same count again).
            await self.inventory.report_on_hand_many(counts, as_of=self.store.clock.now())
        await self.store.write(lambda uow: self._record_inspection(uow, return_id, results, actor))
        return False

    def _record_inspection(
        self, uow: UnitOfWork, return_id: str, results: Sequence[InspectionResult], actor: str
    ) -> None:
        conn = uow.conn
        row = _lock(conn, return_id)
        if row.pending_inspection is None:
            return
        for line in row.lines:
            repo.update_line(
                uow,
                return_id,
                line.line_id,
                inspections=[
                    r.model_dump(mode="json") for r in results if r.line_id == line.line_id
                ],
            )
        cancel(conn, kind=INSPECT_TIMER, key=return_id)
        outcome: dict[tuple[str, str], int] = defaultdict(int)
        for r in results:
            outcome[(r.grade.value, r.disposition.value)] += r.quantity
        summary = ", ".join(f"{q} {grade} ({how})" for (grade, how), q in sorted(outcome.items()))
        repo.move_return(
            uow,
            return_id,
            ReturnStatus.RECEIVED,
            ReturnStatus.INSPECTED,
            actor=actor,
            reason=summary or "nothing to inspect",
            pending_inspection=None,
            inspected_at=uow.now,
        )
        self._emit_row(
            uow,
            "return.inspected",
            row,
            lines=[r.model_dump(mode="json") for r in results],
        )
        self._after_inspection(uow, _require_row(conn, return_id))

    def _after_inspection(self, uow: UnitOfWork, row: repo.ReturnRow) -> None:
        """What inspected goods call for: the channel's refund is credited and bad goods it paid
        for claimed; goods we refunded before inspection that came back bad are flagged; a return
        whose every line the policy refunded needs no approval."""
        if row.channel_refund is not None:
            refund = row.refund(RefundKind.CHANNEL)
            if refund is not None and refund.state is RefundState.AWAITING_INSPECTION:
                repo.update_refund(uow, refund.refund_id, state=RefundState.PENDING.value)
                _schedule(uow, REFUND_TIMER, row.return_id)
            self._claims(uow, row)
            self._complete(uow, _require_row(uow.conn, row.return_id))
            return
        self._flag_early_refunds(uow, row)
        ours = row.ours()
        if ours and not any(
            line.refund_timing is RefundTiming.AFTER_INSPECTION for line in row.lines
        ):
            repo.move_return(
                uow,
                row.return_id,
                ReturnStatus.INSPECTED,
                ReturnStatus.REFUND_APPROVED,
                actor=GATEWAY,
                reason="refunded by the channel's policy ("
                + ", ".join(sorted({r.kind.value for r in ours}))
                + ")",
            )
            self._complete(uow, _require_row(uow.conn, row.return_id))

    def _claims(self, uow: UnitOfWork, row: repo.ReturnRow) -> None:
        """The channel refunded goods that came back damaged or not at all: a claim against the
        channel for what it paid for them."""
        refund = row.refund(RefundKind.CHANNEL)
        paid = {} if refund is None else refund.line_amounts()
        damaged = Decimal(0)
        missing = Decimal(0)
        notes: dict[str, list[str]] = {"damaged": [], "missing": []}
        for line in row.lines:
            _units, amount = paid.get(line.line_id, (0, Decimal(0)))
            price = line.unit_price or Decimal(0)
            bad_damaged = line.units(InspectionGrade.DAMAGED)
            bad_missing = line.missing
            at_damaged = min(price * bad_damaged, amount)
            at_missing = min(price * bad_missing, amount - at_damaged)
            if at_damaged > 0:
                damaged += at_damaged
                notes["damaged"].append(f"line {line.line_id}: {bad_damaged} damaged")
            if at_missing > 0:
                missing += at_missing
                notes["missing"].append(f"line {line.line_id}: {bad_missing} not returned")
        assert row.channel_refund is not None
        channel_ref = row.channel_refund.channel_refund_id
        for code, amount, what in (
            ("claim_against_channel", damaged, "damaged"),
            ("refund_without_goods", missing, "missing"),
        ):
            if amount <= 0:
                continue
            self._exception(
                uow,
                row,
                code=code,
                detail=(
                    f"the channel refunded return {row.return_id} on its own "
                    f"({channel_ref}); inspection found {'; '.join(notes[what])}: claim "
                    f"{amount} {row.currency} from the channel"
                ),
                at_risk=amount,
            )

    def _flag_early_refunds(self, uow: UnitOfWork, row: repo.ReturnRow) -> None:
        """Units we refunded before inspection (policy) that did not come back resellable."""
        at_risk = Decimal(0)
        found: list[str] = []
        for line in row.lines:
            units, amount = row.refunded_units(line.line_id)
            bad = max(units - line.units(InspectionGrade.RESELLABLE), 0)
            if bad and units:
                at_risk += min((line.unit_price or Decimal(0)) * bad, amount)
                found.append(f"line {line.line_id}: {bad} of {units} refunded unit(s)")
        if at_risk > 0:
            self._exception(
                uow,
                row,
                code="early_refund_bad_goods",
                detail=(
                    f"return {row.return_id} was refunded before inspection by the channel's "
                    f"policy and came back not resellable ({'; '.join(found)})"
                ),
                at_risk=at_risk,
            )

    # ------------------------------------------------------------ refunds

    async def approve_refund(
        self, return_id: str, request: ApproveRequest | None, *, actor: str
    ) -> Outcome:
        """inspected -> refund_approved, then refunded once the ERP posted the credit note (the
        channel is told by a return.refunded event). Never before inspection: a return not
        inspected yet is refused (409 return-state)."""
        await self.store.write(lambda uow: self._approve(uow, return_id, request, actor))
        await self._post_quietly(return_id)
        ret = await self._require(return_id)
        return Outcome(ret, waiting=WaitingStep.CREDIT_NOTE in ret.waiting_for)

    def _approve(
        self, uow: UnitOfWork, return_id: str, request: ApproveRequest | None, actor: str
    ) -> None:
        row = _lock(uow.conn, return_id)
        if row.refund(RefundKind.APPROVED) is not None:
            return  # approved before
        if row.channel_refund is not None:
            raise _state_error(
                row,
                "the channel refunded it on its own; that refund is credited after inspection "
                "and needs no approval",
            )
        if row.status is not ReturnStatus.INSPECTED:
            raise _state_error(row, "a refund is approved only after the goods were inspected")
        available: dict[str, int] = {}
        for line in row.lines:
            refunded, _ = row.refunded_units(line.line_id)
            graded = line.units(InspectionGrade.RESELLABLE) + line.units(InspectionGrade.DAMAGED)
            available[line.line_id] = max(graded - refunded, 0)
        wanted: dict[str, int] = {}
        if request is not None and request.lines is not None:
            problems: list[str] = []
            for asked in request.lines:
                if row.line(asked.line_id) is None:
                    problems.append(f"the return has no line {asked.line_id!r}")
                elif asked.quantity > available[asked.line_id]:
                    problems.append(
                        f"line {asked.line_id!r}: {asked.quantity} unit(s) asked, "
                        f"{available[asked.line_id]} refundable (received, not missing, not "
                        "refunded yet)"
                    )
                wanted[asked.line_id] = asked.quantity
            if problems:
                raise ProblemError(RETURN_INVALID, "; ".join(problems))
        else:
            for line in row.lines:
                if line.refund_timing is RefundTiming.AFTER_INSPECTION:
                    wanted[line.line_id] = min(
                        line.units(InspectionGrade.RESELLABLE), available[line.line_id]
                    )
        approved = [
            _credit_line(line.line_id, units, line.unit_price, row.currency)
            for line in row.lines
            if (units := wanted.get(line.line_id, 0)) > 0
        ]
        if not approved:
            raise ProblemError(
                NOTHING_TO_REFUND,
                f"return {return_id} has nothing to refund after inspection (nothing resellable "
                "that was not refunded yet); close it instead",
            )
        repo.insert_refund(
            uow, row, RefundKind.APPROVED, approved, state=RefundState.PENDING, actor=actor
        )
        total = sum((line.amount.amount for line in approved), Decimal(0))
        note = request.note if request is not None else None
        repo.move_return(
            uow,
            return_id,
            ReturnStatus.INSPECTED,
            ReturnStatus.REFUND_APPROVED,
            actor=actor,
            reason=f"refund of {total} {row.currency} approved" + (f": {note}" if note else ""),
        )
        _schedule(uow, REFUND_TIMER, return_id)

    async def mark_channel_refunded(
        self, return_id: str, refund: ChannelRefund, *, actor: str
    ) -> Outcome:
        """The channel refunded its customer on its own (Amazon at the first carrier scan,
        Walmart before arrival): the return is marked channel refunded and reconciled later. The
        goods are still received and inspected; the channel's refund is credited in the ERP
        after inspection; bad goods raise a claim. Telling it again changes nothing."""
        await self.store.write(
            lambda uow: self._mark_channel_refunded(uow, return_id, refund, actor)
        )
        await self._post_quietly(return_id)
        return Outcome(await self._require(return_id))

    def _mark_channel_refunded(
        self, uow: UnitOfWork, return_id: str, refund: ChannelRefund, actor: str
    ) -> None:
        conn = uow.conn
        row = _lock(conn, return_id)
        if row.channel_refund is not None:
            if row.channel_refund == refund:
                return
            raise _state_error(
                row,
                f"the channel's refund {row.channel_refund.channel_refund_id} of "
                f"{row.channel_refund.amount} was recorded before",
            )
        if row.status in (ReturnStatus.REFUSED, ReturnStatus.CLOSED, ReturnStatus.REQUESTED):
            raise _state_error(row, "only an authorized return is refunded")
        if refund.amount.currency != row.currency:
            raise ProblemError(
                RETURN_INVALID,
                f"the return is in {row.currency}, the channel's refund in "
                f"{refund.amount.currency}",
            )
        # What the channel paid, spread over the lines up to what each is worth after the
        # refunds we made: more than that is paid twice, or for nothing.
        remaining = refund.amount.amount
        lines: list[CreditNoteLine] = []
        for line in row.lines:
            units, amount = row.refunded_units(line.line_id)
            room = line.value - amount
            if room <= 0 or line.quantity - units <= 0 or remaining <= 0:
                continue
            take = min(room, remaining)
            lines.append(
                CreditNoteLine(
                    line_id=line.line_id,
                    quantity=line.quantity - units,
                    amount=money(take, row.currency),
                )
            )
            remaining -= take
        repo.update_return(
            uow,
            return_id,
            channel_refund_id=refund.channel_refund_id,
            channel_refund_amount=refund.amount.amount,
            channel_refunded_at=refund.refunded_at,
        )
        reason = (
            f"channel refunded {refund.amount} on its own ({refund.channel_refund_id}, "
            f"{refund.refunded_at.isoformat()})"
        )
        if row.status is ReturnStatus.AUTHORIZED:
            repo.move_return(
                uow, return_id, row.status, ReturnStatus.IN_TRANSIT, actor=actor, reason=reason
            )
        else:
            repo.record_transition(
                uow, return_id, row.status, row.status, actor=actor, reason=reason
            )
        if lines:
            inspected = row.inspected_at is not None
            repo.insert_refund(
                uow,
                row,
                RefundKind.CHANNEL,
                lines,
                state=RefundState.PENDING if inspected else RefundState.AWAITING_INSPECTION,
                actor=actor,
            )
        if remaining > 0:
            self._exception(
                uow,
                row,
                code="channel_refund_excess",
                detail=(
                    f"the channel refunded {refund.amount} for return {row.return_id}, "
                    f"{remaining} {row.currency} more than its lines are worth after the "
                    "refunds already made (refunded twice?)"
                ),
                at_risk=remaining,
            )
        self._emit_row(
            uow,
            "return.channel_refunded",
            row,
            channel_refund_id=refund.channel_refund_id,
            amount=refund.amount.model_dump(mode="json"),
            refunded_at=refund.refunded_at.isoformat(),
        )
        if row.inspected_at is not None:
            fresh = _require_row(conn, return_id)
            if lines:
                _schedule(uow, REFUND_TIMER, return_id)
            if fresh.status is ReturnStatus.INSPECTED:
                self._claims(uow, fresh)
            self._complete(uow, fresh)

    async def _post_quietly(self, return_id: str) -> None:
        """Post what refunds are due now; an unreachable ERP leaves them to the timer."""
        await self._post_refunds(return_id)

    async def _post_refunds(self, return_id: str, *, raise_unavailable: bool = False) -> bool:
        """Post the credit notes of the return's pending refunds, one invoice at a time, each
        under a reference of its own (refund and invoice), so a retry after a lost answer gets
        the credit note already posted instead of a second one. True while some still wait."""
        for _ in range(50):
            plan = await self.store.read(lambda conn: _plan_credit(conn, return_id))
            if plan is None:
                return False
            if not plan.parts:
                if raise_unavailable:
                    raise NotInvoicedYet(f"return {return_id}: refunded units are not invoiced yet")
                return True
            part = plan.parts[0]
            try:
                note = await self.erp.post_credit_note(part.request)
            except BackendUnavailable as exc:
                log.warning(
                    "credit note deferred", extra={"return_id": return_id, "error": str(exc)}
                )
                if raise_unavailable:
                    raise
                return True
            except ProblemError as exc:
                await self.store.write(
                    partial(
                        self._credit_refused, return_id=return_id, refund_id=plan.refund_id, exc=exc
                    )
                )
                if raise_unavailable:
                    raise StillPending(str(exc)) from exc
                return True
            await self.store.write(
                partial(
                    self._record_credit,
                    return_id=return_id,
                    refund_id=plan.refund_id,
                    reference=part.reference,
                    note=note,
                )
            )
        return True

    def _record_credit(
        self, uow: UnitOfWork, return_id: str, refund_id: str, reference: str, note: CreditNote
    ) -> None:
        conn = uow.conn
        row = _lock(conn, return_id)
        refund = next((r for r in row.refunds if r.refund_id == refund_id), None)
        if refund is None or refund.state is RefundState.POSTED:
            return
        if any(entry["reference"] == reference for entry in refund.credit_notes):
            return  # recorded by a concurrent request or timer
        entry = {
            "credit_note_id": note.credit_note_id,
            "invoice_id": note.invoice_id,
            "reference": reference,
            "lines": [
                {
                    "line_id": line.line_id,
                    "quantity": line.quantity,
                    "amount": str(line.amount.amount),
                }
                for line in note.lines
            ],
            "total": str(note.total.amount),
        }
        notes = [*refund.credit_notes, entry]
        # What settlement reconciliation counts as refunded for the order.
        fulfilment_repo.record_credit_note(uow, note, reference=reference, posted_at=uow.now)
        credited = _credited_lines(notes)
        # A line is done once its units or its amount are credited in full (what is left of the
        # other can never be credited: the reconciliation report shows it).
        done = all(
            credited.get(line_id, (0, Decimal(0)))[0] >= units
            or credited.get(line_id, (0, Decimal(0)))[1] >= amount
            for line_id, (units, amount) in refund.line_amounts().items()
        )
        values: dict[str, Any] = {"credit_notes": notes}
        if done:
            values.update(state=RefundState.POSTED.value, posted_at=uow.now)
        repo.update_refund(uow, refund_id, **values)
        repo.update_return(uow, return_id)
        if not done:
            return
        fresh = _require_row(conn, return_id)
        if not any(r.state is RefundState.PENDING for r in fresh.refunds):
            cancel(conn, kind=REFUND_TIMER, key=return_id)
        # The channel's own refund is only credited; any other refund is one the channel pays
        # its customer now: this event tells it.
        event = (
            "return.channel_refund_credited"
            if refund.kind is RefundKind.CHANNEL
            else "return.refunded"
        )
        self._emit_row(
            uow,
            event,
            row,
            refund_id=refund_id,
            kind=refund.kind.value,
            amount={"amount": str(refund.amount), "currency": refund.currency},
            lines=list(refund.lines),
            credit_notes=[str(n["credit_note_id"]) for n in notes],
        )
        self._complete(uow, fresh)

    def _complete(self, uow: UnitOfWork, row: repo.ReturnRow) -> None:
        """Move the return on once every refund it waits for is credited."""
        ours = row.ours()
        if (
            row.status is ReturnStatus.REFUND_APPROVED
            and ours
            and all(r.state is RefundState.POSTED for r in ours)
        ):
            total = sum((r.amount for r in ours), Decimal(0))
            notes = [str(n["credit_note_id"]) for r in ours for n in r.credit_notes]
            repo.move_return(
                uow,
                row.return_id,
                ReturnStatus.REFUND_APPROVED,
                ReturnStatus.REFUNDED,
                actor="erp",
                reason=f"{total} {row.currency} credited: {', '.join(notes)}",
            )
            return
        channel = row.refund(RefundKind.CHANNEL)
        if (
            row.status is ReturnStatus.INSPECTED
            and row.channel_refund is not None
            and (channel is None or channel.state is RefundState.POSTED)
        ):
            notes = (
                [] if channel is None else [str(n["credit_note_id"]) for n in channel.credit_notes]
            )
            repo.move_return(
                uow,
                row.return_id,
                ReturnStatus.INSPECTED,
                ReturnStatus.CHANNEL_REFUNDED,
                actor="erp" if notes else GATEWAY,
                reason=(
                    f"the channel's refund {row.channel_refund.channel_refund_id} credited: "
                    + (", ".join(notes) if notes else "nothing left to credit")
                ),
            )

    def _credit_refused(
        self, uow: UnitOfWork, return_id: str, refund_id: str, exc: ProblemError
    ) -> None:
        row = _require_row(uow.conn, return_id)
        refund = next((r for r in row.refunds if r.refund_id == refund_id), None)
        self._exception(
            uow,
            row,
            code="credit_note_refused",
            detail=(
                f"the ERP refused the credit note of refund {refund_id}: "
                f"{exc.detail or exc.problem.title}"
            ),
            at_risk=None if refund is None else refund.amount,
        )

    # ------------------------------------------------------------ closing

    async def close(self, return_id: str, *, actor: str, reason: str | None) -> Outcome:
        """Close a return whose refund is done (refunded, channel refunded) or that is inspected
        and will not be refunded further; closing again changes nothing."""
        await self.store.write(lambda uow: self._close(uow, return_id, actor, reason))
        return Outcome(await self._require(return_id))

    def _close(self, uow: UnitOfWork, return_id: str, actor: str, reason: str | None) -> None:
        row = _lock(uow.conn, return_id)
        if row.status is ReturnStatus.CLOSED:
            return
        if row.status not in CLOSABLE:
            raise _state_error(
                row, "only an inspected, refunded or channel refunded return is closed"
            )
        waiting = [r.refund_id for r in row.refunds if r.state is not RefundState.POSTED]
        if waiting:
            raise _state_error(row, f"refund(s) {', '.join(waiting)} wait for the ERP")
        repo.move_return(
            uow, return_id, row.status, ReturnStatus.CLOSED, actor=actor, reason=reason
        )
        self._emit_row(uow, "return.closed", row)

    # ------------------------------------------------------------ timers

    async def _on_receive_timer(self, timer: DueTimer) -> None:
        return_id = str(timer.payload["return_id"])
        await self._send_receipt(return_id, raise_unavailable=True)
        await self._post_refunds(return_id)

    async def _on_inspect_timer(self, timer: DueTimer) -> None:
        return_id = str(timer.payload["return_id"])
        await self._send_inspection(return_id, raise_unavailable=True)
        await self._post_refunds(return_id)

    async def _on_refund_timer(self, timer: DueTimer) -> None:
        return_id = str(timer.payload["return_id"])
        if await self._post_refunds(return_id, raise_unavailable=True):
            raise StillPending(f"return {return_id}: refunds still wait for the ERP")

    async def _gave_up(self, timer: DueTimer, error: str) -> None:
        return_id = str(timer.payload.get("return_id", timer.key))
        code, what = {
            RECEIVE_TIMER: ("receipt_not_recorded", "the warehouse receipt"),
            INSPECT_TIMER: ("inspection_not_recorded", "the inspection"),
            REFUND_TIMER: ("credit_note_not_posted", "the refund's credit note"),
        }[timer.kind]

        def escalate(uow: UnitOfWork) -> None:
            row = repo.load_return(uow.conn, return_id)
            if row is None:
                return
            pending = sum(
                (r.amount for r in row.refunds if r.state is RefundState.PENDING), Decimal(0)
            )
            self._exception(
                uow,
                row,
                code=code,
                detail=f"{what} of return {return_id} failed {timer.attempts} times: {error}",
                at_risk=pending if timer.kind == REFUND_TIMER and pending > 0 else None,
                retry=timer,
            )

        await self.store.write(escalate)

    # ------------------------------------------------------------ helpers

    def _step_refused(self, uow: UnitOfWork, return_id: str, step: str, exc: ProblemError) -> None:
        """The WMS refused a receipt or inspection: forget it (it can be sent again once fixed)
        and tell a person."""
        row = _require_row(uow.conn, return_id)
        if step == "receipt":
            repo.update_return(uow, return_id, pending_receipt=None)
            cancel(uow.conn, kind=RECEIVE_TIMER, key=return_id)
        else:
            repo.update_return(uow, return_id, pending_inspection=None)
            cancel(uow.conn, kind=INSPECT_TIMER, key=return_id)
        self._exception(
            uow,
            row,
            code=f"{step}_refused",
            detail=f"the WMS refused the {step} of return {return_id}: "
            f"{exc.detail or exc.problem.title}",
            at_risk=None,
        )

    def _exception(
        self,
        uow: UnitOfWork,
        row: repo.ReturnRow,
        *,
        code: str,
        detail: str,
        at_risk: Decimal | None,
        retry: DueTimer | None = None,
    ) -> str:
        """Open an exception on the return; with the step's timer, `retry` can run it again."""
        return open_exception(
            uow,
            workflow=WORKFLOW,
            code=code,
            subject=f"return/{row.return_id}",
            channel=row.channel,
            detail=clip(detail),
            money_at_risk=None if at_risk is None else money(at_risk, row.currency),
            severity=Severity.HIGH,
            object_ids={
                "return_id": row.return_id,
                "order_id": row.order_id,
                "channel_return_id": row.channel_return_id,
            },
            retry_kind=None if retry is None else retry.kind,
            retry_key=None if retry is None else retry.key,
            retry_payload=None if retry is None else dict(retry.payload),
        )

    def _emit_row(self, uow: UnitOfWork, event: str, row: repo.ReturnRow, **data: Any) -> None:
        uow.emit(
            event,
            source=SOURCE,
            subject=f"return/{row.return_id}",
            channel=row.channel,
            data={
                "return_id": row.return_id,
                "order_id": row.order_id,
                "channel_return_id": row.channel_return_id,
                **data,
            },
        )

    def _emit(
        self,
        uow: UnitOfWork,
        event: str,
        return_id: str,
        order: Order,
        channel_return_id: str,
        **data: Any,
    ) -> None:
        uow.emit(
            event,
            source=SOURCE,
            subject=f"return/{return_id}",
            channel=order.channel,
            data={
                "return_id": return_id,
                "order_id": order.order_id,
                "channel_order_id": order.channel_order_id,
                "channel_return_id": channel_return_id,
                **data,
            },
        )


# ---------------------------------------------------------------- helpers


def _lock(conn: Connection, return_id: str) -> repo.ReturnRow:
    row = repo.lock_return(conn, return_id)
    if row is None:
        raise UnknownReturn(return_id)
    return row


def _require_row(conn: Connection, return_id: str) -> repo.ReturnRow:
    row = repo.load_return(conn, return_id)
    if row is None:
        raise UnknownReturn(return_id)
    return row


def _lock_order(conn: Connection, order_id: str) -> Order:
    """The order, its row locked so two returns of it are decided one after the other."""
    found = conn.execute(
        for_update(conn, select(orders.c.order_id).where(orders.c.order_id == order_id))
    ).scalar_one_or_none()
    order = None if found is None else orders_repo.load_order(conn, order_id)
    if order is None:
        raise UnknownOrder(order_id)
    return order


def _shipped_lines(conn: Connection, order_id: str) -> dict[str, rules.ShippedLine]:
    """Units per order line in packages the WMS confirmed, and when the last of them shipped."""
    units: dict[str, int] = defaultdict(int)
    last: dict[str, datetime] = {}
    for stored in fulfilment_repo.packages_of(conn, order_id, PackageState.CONFIRMED):
        for line in stored.package.lines:
            units[line.line_id] += line.quantity
            if line.line_id not in last or stored.shipped_at > last[line.line_id]:
                last[line.line_id] = stored.shipped_at
    return {
        line_id: rules.ShippedLine(quantity=units[line_id], last_shipped_at=last[line_id])
        for line_id in units
    }


def _state_error(row: repo.ReturnRow, why: str) -> ProblemError:
    return ProblemError(
        RETURN_STATE,
        f"return {row.return_id} is {row.status.value}: {why}",
        return_status=row.status.value,
    )


def _schedule(uow: UnitOfWork, kind: str, return_id: str) -> None:
    """The step is kept: a timer runs it unless it completes first (then it is cancelled)."""
    schedule(
        uow.conn,
        kind=kind,
        key=return_id,
        due_at=uow.now + FIRST_RETRY_AFTER,
        now=uow.now,
        payload={"return_id": return_id},
    )


def _credit_line(line_id: str, units: int, price: Decimal | None, currency: str) -> CreditNoteLine:
    return CreditNoteLine(
        line_id=line_id, quantity=units, amount=money((price or Decimal(0)) * units, currency)
    )


def _line_key(lines: Any) -> list[tuple[str, str, int]]:
    return sorted(lines)


def _canonical(lines: Any) -> list[str]:
    return sorted(json.dumps(line, sort_keys=True) for line in lines)


def _credited_lines(notes: Sequence[dict[str, Any]]) -> dict[str, tuple[int, Decimal]]:
    totals: dict[str, tuple[int, Decimal]] = {}
    for note in notes:
        for line in note["lines"]:
            units, amount = totals.get(str(line["line_id"]), (0, Decimal(0)))
            totals[str(line["line_id"])] = (
                units + int(line["quantity"]),
                amount + Decimal(str(line["amount"])),
            )
    return totals


def _reference(refund_id: str, invoice_id: str) -> str:
    """The ERP reference of a refund's credit against one invoice: the same every retry."""
    reference = f"{refund_id}/{invoice_id}"
    if len(reference) <= _MAX_REFERENCE:
        return reference
    return f"{refund_id}/sha256:{hashlib.sha256(invoice_id.encode()).hexdigest()[:32]}"


def _plan_credit(conn: Connection, return_id: str) -> _CreditPlan | None:
    """The credit notes the first pending refund of the return still needs: its units not
    credited yet, spread over the order's invoices oldest first, within what each invoice line
    has left to credit. None when no refund is pending; no parts while nothing is invoiced."""
    row = repo.load_return(conn, return_id)
    if row is None:
        return None
    refund = next((r for r in row.refunds if r.state is RefundState.PENDING), None)
    if refund is None:
        return None
    done = refund.credited()
    remaining: dict[str, tuple[int, Decimal]] = {}
    for line_id, (units, amount) in refund.line_amounts().items():
        got_units, got_amount = done.get(line_id, (0, Decimal(0)))
        if units - got_units > 0 and amount - got_amount > 0:
            remaining[line_id] = (units - got_units, amount - got_amount)
    used = {str(entry["reference"]) for entry in refund.credit_notes}
    credited = repo.credited_by_invoice_line(conn, row.order_id)
    parts: list[_Part] = []
    for invoice in fulfilment_repo.invoices_of(conn, row.order_id):
        reference = _reference(refund.refund_id, invoice.document_id)
        if reference in used:
            continue
        lines: list[CreditNoteLine] = []
        for item in invoice.lines:
            if item.line_id not in remaining:
                continue
            units, amount = remaining[item.line_id]
            got_units, got_amount = credited.get(
                (invoice.document_id, item.line_id), (0, Decimal(0))
            )
            free_units = item.quantity - got_units
            free_amount = item.amount.amount - got_amount
            if units <= 0 or amount <= 0 or free_units <= 0 or free_amount <= 0:
                continue
            take = min(units, free_units)
            share = amount if take == units else min(amount, item.unit_price.amount * take)
            share = min(share, free_amount)
            if share <= 0:
                continue
            lines.append(
                CreditNoteLine(
                    line_id=item.line_id, quantity=take, amount=money(share, row.currency)
                )
            )
            remaining[item.line_id] = (units - take, amount - share)
        if lines:
            parts.append(
                _Part(
                    reference=reference,
                    request=CreditNoteRequest(
                        invoice_id=invoice.document_id,
                        reference=reference,
                        lines=lines,
                        reason=f"return {row.return_id}: {refund.kind.value} refund",
                    ),
                )
            )
    return _CreditPlan(refund_id=refund.refund_id, parts=parts)


__all__ = [
    "NotInvoicedYet",
    "Outcome",
    "ReturnsService",
    "UnknownOrder",
    "UnknownReturn",
]
