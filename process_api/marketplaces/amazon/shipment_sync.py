"""Shipment confirmations to Amazon (Orders v0 confirmShipment), one per package the warehouse
confirmed, under a stable numeric packageReferenceId."""

from __future__ import annotations

from typing import Any

from gateway_infra.unit_of_work import UnitOfWork
from process_api.exceptions import resolve_exceptions
from process_api.marketplaces.amazon import repository as repo
from process_api.marketplaces.amazon.base import BATCH, CALL_FAILED, AmazonStep, timestamp
from process_api.marketplaces.amazon.http import AmazonError
from process_api.marketplaces.port import SyncReport

SHIPMENT_REFUSED = "amazon_shipment_confirmation_refused"


class ShipmentSync(AmazonStep):
    """Tells Amazon about the channel's packages the warehouse shipped."""

    async def confirm_shipments(self) -> SyncReport:
        """One confirmShipment per package the warehouse confirmed; its packageReferenceId is
        the package's stable row id, so a confirmation sent again (Amazon took it but the
        gateway stopped before recording that) corrects that package, never adds one."""
        report = SyncReport()
        packages = await self.store.read(
            lambda conn: repo.packages_to_confirm(conn, self.channel, BATCH)
        )
        for package in packages:
            subject = f"shipment/{package.order_id}/{package.package_id}"
            try:
                await self.client.call(
                    "confirmShipment",
                    "POST",
                    f"/orders/v0/orders/{package.amazon_order_id}/shipmentConfirmation",
                    json=self.confirmation(package),
                    expect=(204,),
                )
            except AmazonError as exc:
                report.exceptions.append(await self._shipment_refused(package, exc))
                continue

            def unit(
                uow: UnitOfWork, package: repo.PackageToConfirm = package, subject: str = subject
            ) -> None:
                repo.record_confirmation(uow.conn, package, self.channel, uow.now)
                resolve_exceptions(
                    uow,
                    subject=f"amazon/{self.channel}/{subject}"[:200],
                    codes=[SHIPMENT_REFUSED, CALL_FAILED],
                    note="Amazon took the shipment confirmation",
                )

            await self.store.write(unit)
            report.packages_confirmed += 1
        return report

    def confirmation(self, package: repo.PackageToConfirm) -> dict[str, Any]:
        """The ConfirmShipmentRequest of one package."""
        carrier_code = self.profile.carrier_codes.get(package.carrier)
        detail: dict[str, Any] = {
            "packageReferenceId": str(package.package_id),
            "carrierCode": carrier_code or "Other",
            "trackingNumber": package.tracking_number,
            "shipDate": timestamp(package.shipped_at),
            "orderItems": [
                {"orderItemId": str(line["line_id"]), "quantity": int(line["quantity"])}
                for line in package.lines
            ],
        }
        if carrier_code is None:
            detail["carrierName"] = package.carrier
        return {"marketplaceId": self.profile.marketplace_id, "packageDetail": detail}

    async def _shipment_refused(self, package: repo.PackageToConfirm, exc: AmazonError) -> str:
        return await self.new_exception(
            workflow="shipment_confirmation",
            code=SHIPMENT_REFUSED,
            subject=f"amazon/{self.channel}/shipment/{package.order_id}/{package.package_id}",
            detail=(
                f"Amazon did not take the confirmation of package {package.package_id} of "
                f"order {package.amazon_order_id}: {exc.detail}. Retried every sync round."
            ),
            object_ids={"order_id": package.order_id, "package_id": str(package.package_id)},
        )
