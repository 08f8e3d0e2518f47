"""The back half of order-to-cash: release to the warehouse, shipments per package, invoicing
and settlement.

The WMS owns shipments and the ERP owns invoices: the gateway records either only once its
system of record has confirmed it. While one of them cannot be reached, the intent is kept
durably (a release request, pending packages, a due invoice) and a scheduler timer retries; a
refusal that no retry can fix becomes an exception for a person.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from contracts import Order, OrderStatus, Package, SettlementReport, Shipment
from contracts.erp import Invoice, InvoiceLineRequest, InvoiceRequest
from contracts.exceptions import Severity
from contracts.wms import FulfilmentLine, FulfilmentRequest, ShipmentConfirmation
from gateway_infra.database import for_update
from gateway_infra.problems import ProblemError
from gateway_infra.scheduler import DueTimer, RetryPolicy, Scheduler, cancel, schedule
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api.exceptions import StepSupervisor, open_exception
from process_api.fulfilment import repository as repo
from process_api.fulfilment import settlement
from process_api.fulfilment.models import (
    CONFIRM_TIMER,
    INVOICE_TIMER,
    RELEASE_TIMER,
    SOURCE,
    Imported,
    Invoicing,
    OrderShipments,
    PackageState,
    Reconciliation,
    Release,
    package_lines,
    same_contents,
)
from process_api.inventory.models import ReservationNotFound
from process_api.inventory.repository import consume
from process_api.inventory.service import InventoryService
from process_api.order_to_cash import repository as orders_repo
from process_api.problems import (
    NOTHING_TO_INVOICE,
    ORDER_NOT_RELEASABLE,
    ORDER_NOT_SHIPPABLE,
    OVER_SHIPMENT,
    PACKAGE_CONFLICT,
    RELEASE_REFUSED,
    SHIPMENT_INVALID,
)
from process_api.tables import orders
from process_api.text import clip
from system_api.erp.port import ErpPort
from system_api.errors import BackendUnavailable
from system_api.wms.port import WmsPort

log = logging.getLogger("gateway.fulfilment")

DEFAULT_WAREHOUSE = "WH"
FIRST_RETRY_AFTER = timedelta(seconds=30)
# Shipment confirmation and invoicing are money and customer promises: retry long, then escalate.
BACKEND_RETRY = RetryPolicy(
    max_attempts=40, base_delay=timedelta(seconds=5), max_delay=timedelta(minutes=10)
)
MAX_PACKAGES_PER_CONFIRMATION = 500
SHIPPED_STATES = frozenset({OrderStatus.SHIPPED, OrderStatus.INVOICED, OrderStatus.SETTLED})
SHIPPABLE_STATES = frozenset({OrderStatus.RELEASED, OrderStatus.PARTIALLY_SHIPPED})


class UnknownOrder(LookupError):
    """No order with this id."""

    def __init__(self, order_id: str) -> None:
        super().__init__(order_id)
        self.order_id = order_id


@dataclass(frozen=True)
class Recorded:
    """What a shipment report did: shipments as they now are, and whether it added packages
    (created) or left them waiting for the WMS (pending)."""

    shipments: OrderShipments
    created: bool
    pending: bool


@dataclass(frozen=True)
class _ToConfirm:
    fulfilment_id: str | None
    packages: list[Package]
    new: bool


@dataclass(frozen=True)
class _InvoicePlan:
    order: Order
    sales_order_id: str | None
    lines: list[InvoiceLineRequest]
    reference: str


class FulfilmentService:
    """Release, shipments, invoices and settlement of orders, for the process API and timers."""

    def __init__(
        self,
        store: Store,
        erp: ErpPort,
        wms: WmsPort,
        inventory: InventoryService,
        *,
        warehouse: str = DEFAULT_WAREHOUSE,
    ) -> None:
        self.store = store
        self.erp = erp
        self.wms = wms
        self.inventory = inventory
        self.warehouse = warehouse

    def register_timers(self, scheduler: Scheduler) -> None:
        """Each step retries while a backend is down; one that gives up opens an exception whose
        `retry` action runs it again, and that exception resolves once a run succeeds."""
        for kind, handler in (
            (RELEASE_TIMER, self._on_release_timer),
            (CONFIRM_TIMER, self._on_confirm_timer),
            (INVOICE_TIMER, self._on_invoice_timer),
        ):
            supervisor = StepSupervisor(self.store, workflow=_STEPS[kind][0])
            scheduler.register(
                kind, supervisor.watch(handler), retry=BACKEND_RETRY, on_give_up=self._gave_up
            )

    # ------------------------------------------------------------ release to the warehouse

    async def release(self, order_id: str, *, actor: str, warehouse: str | None = None) -> Release:
        """Release an accepted order to the warehouse; asking again changes nothing.

        The request is recorded first; the ERP's sales order is confirmed and the WMS asked for a
        fulfilment right away, and by a retried timer while either cannot be reached.
        """
        chosen = warehouse or self.warehouse
        await self.store.write(
            lambda uow: self._record_release_intent(uow, order_id, chosen, actor)
        )
        await self._release_in_backends(order_id, raise_refusal=True)
        return await self.release_of(order_id)

    def _record_release_intent(
        self, uow: UnitOfWork, order_id: str, warehouse: str, actor: str
    ) -> None:
        order = _lock_order(uow.conn, order_id)
        if repo.fulfilment_of(uow.conn, order_id) is not None:
            return  # released, or being released: the first request stands
        if order.status is not OrderStatus.ACCEPTED:
            raise ProblemError(
                ORDER_NOT_RELEASABLE,
                f"order {order_id} is {order.status.value}; only accepted orders are released "
                "to the warehouse",
                order_status=order.status.value,
            )
        repo.record_release_intent(uow, order_id, warehouse, actor)
        schedule(
            uow.conn,
            kind=RELEASE_TIMER,
            key=order_id,
            due_at=uow.now + FIRST_RETRY_AFTER,
            now=uow.now,
            payload={"order_id": order_id},
        )

    async def _release_in_backends(
        self, order_id: str, *, raise_unavailable: bool = False, raise_refusal: bool = False
    ) -> None:
        def read(conn: Connection) -> tuple[Order | None, repo.FulfilmentRow | None, str | None]:
            return (
                orders_repo.load_order(conn, order_id),
                repo.fulfilment_of(conn, order_id),
                orders_repo.erp_sales_order_id(conn, order_id),
            )

        order, row, sales_order_id = await self.store.read(read)
        if order is None or row is None or row.fulfilment_id is not None:
            return
        if order.status is not OrderStatus.ACCEPTED:
            # Cancelled (or put on hold) before the warehouse heard of it: nothing to release.
            await self.store.write(lambda uow: self._drop_release(uow, order_id))
            return
        request = FulfilmentRequest(
            order_reference=order_id,
            warehouse=row.warehouse,
            lines=[
                FulfilmentLine(line_id=line.line_id, sku=line.sku, quantity=line.quantity)
                for line in order.lines
            ],
        )
        try:
            if sales_order_id is not None:
                await self.erp.confirm_sales_order(sales_order_id)
            fulfilment = await self.wms.request_fulfilment(request)
        except BackendUnavailable as exc:
            log.warning("release deferred", extra={"order_id": order_id, "error": str(exc)})
            if raise_unavailable:
                raise
            return
        except ProblemError as exc:
            refusal = exc
            await self.store.write(lambda uow: self._release_refused(uow, order, refusal))
            if raise_refusal:
                raise ProblemError(
                    RELEASE_REFUSED,
                    f"order {order_id} was not released: {exc.detail or exc.problem.title}",
                    backend_problem=exc.problem.code,
                ) from exc
            return
        await self.store.write(
            lambda uow: self._record_release(uow, order, fulfilment.fulfilment_id, row.warehouse)
        )

    def _drop_release(self, uow: UnitOfWork, order_id: str) -> None:
        repo.drop_release_intent(uow, order_id)
        cancel(uow.conn, kind=RELEASE_TIMER, key=order_id)

    def _release_refused(self, uow: UnitOfWork, order: Order, exc: ProblemError) -> None:
        """Forget the release request (it can be asked again once fixed) and tell a person."""
        self._drop_release(uow, order.order_id)
        _open_exception(
            uow,
            workflow="fulfilment",
            code="release_refused",
            subject=f"order/{order.order_id}",
            channel=order.channel,
            detail=f"release of order {order.order_id} refused: {exc.detail or exc.problem.title}",
            severity=Severity.HIGH,
            object_ids={"order_id": order.order_id, "channel_order_id": order.channel_order_id},
        )

    def _record_release(
        self, uow: UnitOfWork, order: Order, fulfilment_id: str, warehouse: str
    ) -> None:
        order_id = order.order_id
        _lock_order(uow.conn, order_id)
        cancel(uow.conn, kind=RELEASE_TIMER, key=order_id)
        if not repo.set_released(uow, order_id, fulfilment_id):
            return  # recorded by a concurrent release
        row = repo.fulfilment_of(uow.conn, order_id)
        actor = "gateway" if row is None else row.requested_by
        if not orders_repo.move_order(
            uow,
            order_id,
            OrderStatus.ACCEPTED,
            OrderStatus.RELEASED,
            actor=actor,
            reason=f"fulfilment {fulfilment_id} at {warehouse}",
        ):
            current = orders_repo.load_order(uow.conn, order_id)
            status = "unknown" if current is None else current.status.value
            _open_exception(
                uow,
                workflow="fulfilment",
                code="released_order_changed",
                subject=f"order/{order_id}",
                channel=order.channel,
                detail=(
                    f"the warehouse released order {order_id} as fulfilment {fulfilment_id} "
                    f"while the order became {status}; stop the picking if it must not ship"
                ),
                severity=Severity.HIGH,
                object_ids={"order_id": order_id, "fulfilment_id": fulfilment_id},
            )
            return
        uow.emit(
            "order.released",
            source=SOURCE,
            subject=f"order/{order_id}",
            channel=order.channel,
            data={
                "order_id": order_id,
                "channel_order_id": order.channel_order_id,
                "fulfilment_id": fulfilment_id,
                "warehouse": warehouse,
            },
        )

    async def _on_release_timer(self, timer: DueTimer) -> None:
        await self._release_in_backends(str(timer.payload["order_id"]), raise_unavailable=True)

    async def release_of(self, order_id: str) -> Release:
        def read(conn: Connection) -> Release:
            order = orders_repo.load_order(conn, order_id)
            if order is None:
                raise UnknownOrder(order_id)
            row = repo.fulfilment_of(conn, order_id)
            if row is None:
                raise ProblemError(
                    ORDER_NOT_RELEASABLE,
                    f"order {order_id} was not released to the warehouse",
                    order_status=order.status.value,
                )
            return Release(
                order=order,
                warehouse=row.warehouse,
                fulfilment_id=row.fulfilment_id,
                requested_at=row.requested_at,
                released_at=row.released_at,
            )

        return await self.store.read(read)

    # ------------------------------------------------------------ shipments

    async def record_shipment(self, order_id: str, shipment: Shipment, *, actor: str) -> Recorded:
        """Record the packages of a shipment once each (by package reference).

        A package sent again with the same contents changes nothing; with other contents it is
        refused (409 package-conflict), as is any unit beyond the ordered quantity (409
        over-shipment). New packages are confirmed with the WMS (the system of record for
        shipments) and only then recorded: their units leave the reservation and on-hand, the
        order moves on, and invoicing is due. While the WMS cannot be reached they wait as
        pending packages and a timer confirms them later.
        """
        plan = await self.store.write(
            lambda uow: self._record_reported(uow, order_id, shipment, actor)
        )
        if not plan.packages:
            return Recorded(await self.shipments(order_id), created=False, pending=False)
        references = [p.package_reference for p in plan.packages]
        try:
            await self._confirm_with_wms(plan.fulfilment_id, plan.packages)
        except BackendUnavailable as exc:
            log.warning(
                "shipment confirmation deferred", extra={"order_id": order_id, "error": str(exc)}
            )
            return Recorded(await self.shipments(order_id), created=plan.new, pending=True)
        except ProblemError:
            await self.store.write(lambda uow: self._forget_pending(uow, order_id, references))
            raise
        skus = await self.store.write(
            lambda uow: self._record_confirmed(uow, order_id, references, actor)
        )
        await self._publish(skus)
        return Recorded(await self.shipments(order_id), created=plan.new, pending=False)

    def _record_reported(
        self, uow: UnitOfWork, order_id: str, shipment: Shipment, actor: str
    ) -> _ToConfirm:
        conn = uow.conn
        order = _lock_order(conn, order_id)
        release = repo.fulfilment_of(conn, order_id)
        fulfilment_id = None if release is None else release.fulfilment_id
        stored = {p.reference: p for p in repo.packages_of(conn, order_id)}
        new: list[Package] = []
        waiting: list[Package] = []
        for package in shipment.packages:
            known = stored.get(package.package_reference)
            if known is None:
                new.append(package)
            elif not same_contents(known.package, package):
                raise ProblemError(
                    PACKAGE_CONFLICT,
                    f"package {package.package_reference!r} of order {order_id} was recorded "
                    "with other contents; a package is never changed once reported",
                    package_reference=package.package_reference,
                    recorded=known.package.model_dump(mode="json"),
                )
            elif known.state is PackageState.PENDING:
                waiting.append(package)
        if not new:
            return _ToConfirm(fulfilment_id, waiting, new=False)
        if order.status in SHIPPED_STATES:
            raise ProblemError(
                OVER_SHIPMENT,
                f"order {order_id} has shipped in full; package(s) "
                f"{', '.join(p.package_reference for p in new)} would ship more than ordered",
                order_status=order.status.value,
            )
        if order.status not in SHIPPABLE_STATES or release is None or fulfilment_id is None:
            raise ProblemError(
                ORDER_NOT_SHIPPABLE,
                f"order {order_id} is {order.status.value}; only orders released to the "
                "warehouse ship",
                order_status=order.status.value,
            )
        if shipment.warehouse != release.warehouse:
            raise ProblemError(
                SHIPMENT_INVALID,
                f"order {order_id} was released to warehouse {release.warehouse}, not "
                f"{shipment.warehouse}",
            )
        _check_fits(order, new, repo.shipped_quantities(stored.values()))
        repo.insert_packages(
            uow,
            order_id,
            shipment_id=shipment.shipment_id or repo.new_shipment_id(),
            warehouse=shipment.warehouse,
            shipped_at=shipment.shipped_at,
            packages=new,
            actor=actor,
        )
        schedule(
            conn,
            kind=CONFIRM_TIMER,
            key=order_id,
            due_at=uow.now + FIRST_RETRY_AFTER,
            now=uow.now,
            payload={"order_id": order_id},
        )
        return _ToConfirm(fulfilment_id, waiting + new, new=True)

    async def _confirm_with_wms(self, fulfilment_id: str | None, packages: list[Package]) -> None:
        """Have the WMS confirm the packages; a package the WMS knows with other contents is
        refused rather than corrected (the warehouse's record wins)."""
        if fulfilment_id is None:
            raise ProblemError(ORDER_NOT_SHIPPABLE, "the order has no fulfilment in the WMS")
        fulfilment = await self.wms.get_fulfilment(fulfilment_id)
        if fulfilment is None:
            raise ProblemError(
                ORDER_NOT_SHIPPABLE, f"the WMS does not know fulfilment {fulfilment_id}"
            )
        in_wms = {p.package_reference: p for p in fulfilment.packages}
        for package in packages:
            known = in_wms.get(package.package_reference)
            if known is not None and not same_contents(known, package):
                raise ProblemError(
                    PACKAGE_CONFLICT,
                    f"the warehouse recorded package {package.package_reference!r} with other "
                    "contents",
                    package_reference=package.package_reference,
                    recorded=known.model_dump(mode="json"),
                )
        for start in range(0, len(packages), MAX_PACKAGES_PER_CONFIRMATION):
            chunk = packages[start : start + MAX_PACKAGES_PER_CONFIRMATION]
            await self.wms.confirm_shipment(fulfilment_id, ShipmentConfirmation(packages=chunk))

    def _forget_pending(self, uow: UnitOfWork, order_id: str, references: Sequence[str]) -> None:
        repo.drop_pending(uow, order_id, references)
        if not repo.packages_of(uow.conn, order_id, PackageState.PENDING):
            cancel(uow.conn, kind=CONFIRM_TIMER, key=order_id)

    def _record_confirmed(
        self, uow: UnitOfWork, order_id: str, references: Sequence[str], actor: str
    ) -> list[str]:
        """Record packages the WMS confirmed: consume, move the order, make invoicing due.

        Returns the SKUs whose stock changed."""
        conn = uow.conn
        order = _lock_order(conn, order_id)
        now_confirmed = [ref for ref in references if repo.confirm_package(uow, order_id, ref)]
        if not repo.packages_of(conn, order_id, PackageState.PENDING):
            cancel(conn, kind=CONFIRM_TIMER, key=order_id)
        if not now_confirmed:
            return []  # confirmed by a concurrent request or timer
        confirmed = repo.packages_of(conn, order_id, PackageState.CONFIRMED)
        fresh = [p for p in confirmed if p.reference in set(now_confirmed)]
        units: dict[tuple[str, str], int] = defaultdict(int)
        for stored in fresh:
            for line in stored.package.lines:
                units[(line.sku, line.line_id)] += line.quantity
        # Positions in SKU order, as every stock change does, so concurrent work never deadlocks.
        for (sku, line_id), quantity in sorted(units.items()):
            try:
                consume(uow, order_id, line_id, quantity)
            except ReservationNotFound:
                log.warning(
                    "shipped line without a reservation",
                    extra={"order_id": order_id, "line_id": line_id, "sku": sku},
                )
        shipped = repo.shipped_quantities(confirmed)
        in_full = all(shipped.get(line.line_id, 0) >= line.quantity for line in order.lines)
        reason = "package(s) " + ", ".join(now_confirmed)
        status = order.status
        if status is OrderStatus.RELEASED:
            target = OrderStatus.SHIPPED if in_full else OrderStatus.PARTIALLY_SHIPPED
            orders_repo.move_order(uow, order_id, status, target, actor=actor, reason=reason)
            status = target
        elif status is OrderStatus.PARTIALLY_SHIPPED and in_full:
            orders_repo.move_order(
                uow, order_id, status, OrderStatus.SHIPPED, actor=actor, reason=reason
            )
            status = OrderStatus.SHIPPED
        elif status not in SHIPPABLE_STATES:
            _open_exception(
                uow,
                workflow="fulfilment",
                code="shipped_while_not_released",
                subject=f"order/{order_id}",
                channel=order.channel,
                detail=(
                    f"the warehouse shipped package(s) {', '.join(now_confirmed)} of order "
                    f"{order_id} while it is {status.value}"
                ),
                severity=Severity.HIGH,
                object_ids={"order_id": order_id, "channel_order_id": order.channel_order_id},
            )
        by_shipment: dict[str, list[repo.StoredPackage]] = {}
        for stored in fresh:
            by_shipment.setdefault(stored.shipment_id, []).append(stored)
        for shipment_id, group in by_shipment.items():
            uow.emit(
                "shipment.recorded",
                source=SOURCE,
                subject=f"order/{order_id}",
                channel=order.channel,
                data={
                    "order_id": order_id,
                    "channel_order_id": order.channel_order_id,
                    "shipment_id": shipment_id,
                    "warehouse": group[0].warehouse,
                    "shipped_at": min(p.shipped_at for p in group).isoformat(),
                    "packages": [_package_event(p.package) for p in group],
                    "order_status": status.value,
                },
            )
        if status is OrderStatus.SHIPPED and order.status is not OrderStatus.SHIPPED:
            uow.emit(
                "order.shipped",
                source=SOURCE,
                subject=f"order/{order_id}",
                channel=order.channel,
                data={
                    "order_id": order_id,
                    "channel_order_id": order.channel_order_id,
                    "packages": [_package_event(p.package) for p in confirmed],
                },
            )
        schedule(
            conn,
            kind=INVOICE_TIMER,
            key=order_id,
            due_at=uow.now,
            now=uow.now,
            payload={"order_id": order_id},
        )
        return sorted({sku for sku, _ in units})

    async def _on_confirm_timer(self, timer: DueTimer) -> None:
        order_id = str(timer.payload["order_id"])

        def read(conn: Connection) -> tuple[str | None, list[Package]]:
            row = repo.fulfilment_of(conn, order_id)
            pending = repo.packages_of(conn, order_id, PackageState.PENDING)
            return (None if row is None else row.fulfilment_id, [p.package for p in pending])

        fulfilment_id, pending = await self.store.read(read)
        if not pending:
            return
        references = [p.package_reference for p in pending]
        try:
            await self._confirm_with_wms(fulfilment_id, pending)
        except BackendUnavailable:
            raise
        except ProblemError as exc:
            refusal = exc
            await self.store.write(
                lambda uow: self._confirmation_refused(uow, order_id, references, refusal)
            )
            return
        skus = await self.store.write(
            lambda uow: self._record_confirmed(uow, order_id, references, "wms")
        )
        await self._publish(skus)

    def _confirmation_refused(
        self, uow: UnitOfWork, order_id: str, references: Sequence[str], exc: ProblemError
    ) -> None:
        order = orders_repo.load_order(uow.conn, order_id)
        self._forget_pending(uow, order_id, references)
        _open_exception(
            uow,
            workflow="fulfilment",
            code="shipment_refused",
            subject=f"order/{order_id}",
            channel=None if order is None else order.channel,
            detail=(
                f"the WMS refused package(s) {', '.join(references)} of order {order_id}: "
                f"{exc.detail or exc.problem.title}; they were not recorded"
            ),
            severity=Severity.HIGH,
            object_ids={"order_id": order_id, "packages": ",".join(references)[:500]},
        )

    async def shipments(self, order_id: str) -> OrderShipments:
        """The order's recorded shipments and the packages still waiting for the WMS."""

        def read(conn: Connection) -> OrderShipments:
            order = orders_repo.load_order(conn, order_id)
            if order is None:
                raise UnknownOrder(order_id)
            packages = repo.packages_of(conn, order_id)
            confirmed = [p for p in packages if p.state is PackageState.CONFIRMED]
            return OrderShipments(
                order_id=order_id,
                order_status=order.status,
                shipments=repo.shipments_of(conn, order_id),
                pending_packages=[p.package for p in packages if p.state is PackageState.PENDING],
                shipped=repo.shipped_quantities(confirmed),
            )

        return await self.store.read(read)

    async def list_shipments(self, order_id: str) -> list[Shipment]:
        """The order's shipments confirmed by the WMS (none for an unknown order)."""
        return await self.store.read(lambda conn: repo.shipments_of(conn, order_id))

    async def _publish(self, skus: Sequence[str]) -> None:
        """Publish the availability a shipment changed, in a transaction of its own (a periodic
        sweep repairs what a crash between the two transactions left unpublished)."""
        if skus:
            await self.inventory.publish_changes(skus=skus)

    # ------------------------------------------------------------ invoicing

    async def invoice(self, order_id: str, *, raise_unavailable: bool = False) -> Invoicing:
        """Post an ERP invoice for shipped units not invoiced yet, once per reference.

        The reference is the order id and the invoice's number within the order, so a retry
        after a lost answer asks for the same reference and the ERP returns the invoice it
        posted instead of a second one. A fully shipped, fully invoiced order becomes invoiced.
        """
        waiting = False
        for _ in range(4):  # the ERP may answer with an invoice posted earlier: invoice the rest
            plan = await self.store.read(lambda conn: _plan_invoice(conn, order_id))
            if not plan.lines:
                await self.store.write(lambda uow: self._complete_invoicing(uow, order_id))
                break
            if plan.sales_order_id is None:
                raise ProblemError(
                    NOTHING_TO_INVOICE, f"order {order_id} has no sales order in the ERP"
                )
            request = InvoiceRequest(
                sales_order_id=plan.sales_order_id, reference=plan.reference, lines=plan.lines
            )
            try:
                posted = await self.erp.post_invoice(request)
            except BackendUnavailable as exc:
                log.warning("invoice deferred", extra={"order_id": order_id, "error": str(exc)})
                if raise_unavailable:
                    raise
                await self.store.write(lambda uow: _schedule_invoice(uow, order_id))
                waiting = True
                break
            await self.store.write(partial(self._record_invoice, order=plan.order, invoice=posted))
        return await self.invoicing(order_id, waiting=waiting)

    def _record_invoice(self, uow: UnitOfWork, order: Order, invoice: Invoice) -> None:
        _lock_order(uow.conn, order.order_id)
        if repo.record_invoice(uow, order.order_id, invoice):
            uow.emit(
                "invoice.posted",
                source=SOURCE,
                subject=f"order/{order.order_id}",
                channel=order.channel,
                data={
                    "order_id": order.order_id,
                    "channel_order_id": order.channel_order_id,
                    "invoice_id": invoice.invoice_id,
                    "reference": invoice.reference,
                    "total": invoice.total.model_dump(mode="json"),
                    "lines": [
                        {"line_id": line.line_id, "quantity": line.quantity}
                        for line in invoice.lines
                    ],
                },
            )
        self._complete_invoicing(uow, order.order_id)

    def _complete_invoicing(self, uow: UnitOfWork, order_id: str) -> None:
        """Move a fully shipped, fully invoiced order to invoiced; stop the timer once nothing
        shipped waits for an invoice."""
        conn = uow.conn
        order = orders_repo.load_order(conn, order_id)
        if order is None:
            return
        shipped = repo.shipped_quantities(repo.packages_of(conn, order_id, PackageState.CONFIRMED))
        invoiced = repo.invoiced_quantities(conn, order_id)
        if all(invoiced.get(line, 0) >= units for line, units in shipped.items()):
            cancel(conn, kind=INVOICE_TIMER, key=order_id)
        if order.status is not OrderStatus.SHIPPED:
            return
        if not all(invoiced.get(line.line_id, 0) >= line.quantity for line in order.lines):
            return
        documents = repo.invoices_of(conn, order_id)
        if orders_repo.move_order(
            uow,
            order_id,
            OrderStatus.SHIPPED,
            OrderStatus.INVOICED,
            actor="erp",
            reason="invoice(s) " + ", ".join(d.document_id for d in documents),
        ):
            total = sum((d.total.amount for d in documents), Decimal(0))
            uow.emit(
                "order.invoiced",
                source=SOURCE,
                subject=f"order/{order_id}",
                channel=order.channel,
                data={
                    "order_id": order_id,
                    "channel_order_id": order.channel_order_id,
                    "invoices": [d.document_id for d in documents],
                    "total": {"amount": str(total), "currency": order.currency},
                },
            )

    async def _on_invoice_timer(self, timer: DueTimer) -> None:
        order_id = str(timer.payload["order_id"])
        try:
            await self.invoice(order_id, raise_unavailable=True)
        except BackendUnavailable:
            raise
        except ProblemError as exc:
            refusal = exc
            await self.store.write(lambda uow: _invoice_refused(uow, order_id, refusal))

    async def invoicing(self, order_id: str, *, waiting: bool = False) -> Invoicing:
        """The order's invoices, and whether shipped units still wait for one."""

        def read(conn: Connection) -> Invoicing:
            order = orders_repo.load_order(conn, order_id)
            if order is None:
                raise UnknownOrder(order_id)
            shipped = repo.shipped_quantities(
                repo.packages_of(conn, order_id, PackageState.CONFIRMED)
            )
            invoiced = repo.invoiced_quantities(conn, order_id)
            return Invoicing(
                order_id=order_id,
                order_status=order.status,
                invoices=repo.invoices_of(conn, order_id),
                invoiced=invoiced,
                waiting_for_erp=waiting
                or any(invoiced.get(line, 0) < units for line, units in shipped.items()),
            )

        return await self.store.read(read)

    # ------------------------------------------------------------ settlement

    async def import_settlement(self, report: SettlementReport, *, actor: str) -> Imported:
        """Import a channel's payout report once and reconcile it (see settlement.import_report)."""
        try:
            return await self.store.write(
                lambda uow: settlement.import_report(uow, report, actor=actor)
            )
        except IntegrityError:
            # A concurrent import of the same payout won the insert; this one sees what it did.
            return await self.store.write(
                lambda uow: settlement.import_report(uow, report, actor=actor)
            )

    async def reconciliation(self, channel: str, payout_id: str) -> Reconciliation | None:
        return await self.store.read(
            lambda conn: settlement.load_reconciliation(conn, channel, payout_id)
        )

    # ------------------------------------------------------------ escalation

    async def _gave_up(self, timer: DueTimer, error: str) -> None:
        order_id = str(timer.payload.get("order_id", timer.key))
        what = _STEPS[timer.kind]

        def escalate(uow: UnitOfWork) -> None:
            order = orders_repo.load_order(uow.conn, order_id)
            _open_exception(
                uow,
                workflow=what[0],
                code=what[1],
                subject=f"order/{order_id}",
                channel=None if order is None else order.channel,
                detail=f"{what[2]} of order {order_id} failed {timer.attempts} times: {error}",
                severity=Severity.HIGH,
                object_ids={"order_id": order_id},
                retry_kind=timer.kind,
                retry_key=timer.key,
                retry_payload=dict(timer.payload),
            )

        await self.store.write(escalate)


# ---------------------------------------------------------------- helpers

_STEPS = {
    RELEASE_TIMER: ("fulfilment", "release_not_confirmed", "release to the warehouse"),
    CONFIRM_TIMER: ("shipment_confirmation", "shipment_not_confirmed", "shipment confirmation"),
    INVOICE_TIMER: ("invoicing", "invoice_not_posted", "invoice"),
}
"""Per timer: the workflow, the exception code and what the step does, in words."""


def _open_exception(uow: UnitOfWork, *, detail: str, **fields: Any) -> str:
    """Open an exception for a person; details quoting backends are kept readable in length."""
    return open_exception(uow, detail=clip(detail), **fields)


def _lock_order(conn: Connection, order_id: str) -> Order:
    """The order, its row locked for the rest of the transaction (PostgreSQL; SQLite's write
    transactions are exclusive already): shipments and invoices of one order never interleave."""
    found = conn.execute(
        for_update(conn, select(orders.c.order_id).where(orders.c.order_id == order_id))
    ).scalar_one_or_none()
    order = None if found is None else orders_repo.load_order(conn, order_id)
    if order is None:
        raise UnknownOrder(order_id)
    return order


def _check_fits(order: Order, packages: Sequence[Package], already: dict[str, int]) -> None:
    """Every package line names a line of the order with its SKU, and no line ships more units
    than were ordered."""
    lines = {line.line_id: line for line in order.lines}
    adding: dict[str, int] = defaultdict(int)
    for package in packages:
        seen: set[str] = set()
        for item in package.lines:
            line = lines.get(item.line_id)
            if line is None:
                raise ProblemError(
                    SHIPMENT_INVALID,
                    f"package {package.package_reference!r} ships line {item.line_id!r}, which "
                    f"order {order.order_id} does not have",
                )
            if item.sku != line.sku:
                raise ProblemError(
                    SHIPMENT_INVALID,
                    f"package {package.package_reference!r} ships {item.sku} on line "
                    f"{item.line_id!r}, which is {line.sku}",
                )
            if item.line_id in seen:
                raise ProblemError(
                    SHIPMENT_INVALID,
                    f"package {package.package_reference!r} lists line {item.line_id!r} twice",
                )
            seen.add(item.line_id)
            adding[item.line_id] += item.quantity
    over = [
        {
            "line_id": line_id,
            "ordered": lines[line_id].quantity,
            "shipped": already.get(line_id, 0),
            "reported": quantity,
        }
        for line_id, quantity in adding.items()
        if already.get(line_id, 0) + quantity > lines[line_id].quantity
    ]
    if over:
        raise ProblemError(
            OVER_SHIPMENT,
            "; ".join(
                f"line {o['line_id']}: {o['ordered']} ordered, {o['shipped']} shipped, "
                f"{o['reported']} more reported"
                for o in over
            ),
            lines=over,
        )


def _plan_invoice(conn: Connection, order_id: str) -> _InvoicePlan:
    order = orders_repo.load_order(conn, order_id)
    if order is None:
        raise UnknownOrder(order_id)
    shipped = repo.shipped_quantities(repo.packages_of(conn, order_id, PackageState.CONFIRMED))
    if not shipped:
        raise ProblemError(
            NOTHING_TO_INVOICE,
            f"order {order_id} is {order.status.value} and has shipped nothing to invoice",
            order_status=order.status.value,
        )
    invoiced = repo.invoiced_quantities(conn, order_id)
    lines = [
        InvoiceLineRequest(line_id=line.line_id, quantity=due)
        for line in order.lines
        if (due := shipped.get(line.line_id, 0) - invoiced.get(line.line_id, 0)) > 0
    ]
    number = len(repo.invoices_of(conn, order_id)) + 1
    return _InvoicePlan(
        order=order,
        sales_order_id=orders_repo.erp_sales_order_id(conn, order_id),
        lines=lines,
        reference=f"{order_id}/invoice/{number}",
    )


def _schedule_invoice(uow: UnitOfWork, order_id: str) -> None:
    schedule(
        uow.conn,
        kind=INVOICE_TIMER,
        key=order_id,
        due_at=uow.now + FIRST_RETRY_AFTER,
        now=uow.now,
        payload={"order_id": order_id},
    )


def _invoice_refused(uow: UnitOfWork, order_id: str, exc: ProblemError) -> None:
    order = orders_repo.load_order(uow.conn, order_id)
    _open_exception(
        uow,
        workflow="invoicing",
        code="invoice_refused",
        subject=f"order/{order_id}",
        channel=None if order is None else order.channel,
        detail=f"the ERP refused to invoice order {order_id}: {exc.detail or exc.problem.title}",
        severity=Severity.HIGH,
        object_ids={"order_id": order_id},
    )


def _package_event(package: Package) -> dict[str, Any]:
    return {
        "package_reference": package.package_reference,
        "carrier": package.carrier,
        "tracking_number": package.tracking_number,
        "lines": package_lines(package),
    }
