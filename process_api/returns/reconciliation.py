"""Reconciliation of returns: what the ERP credited, what the WMS received and what the channel
refunded on its own, per return, with every disagreement and its amount."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection

from contracts.returns import ReturnStatus
from process_api.returns import repository as repo
from process_api.returns.models import (
    Mismatch,
    MismatchCode,
    PeriodTotals,
    ReturnsReconciliation,
    money,
)


def reconcile(
    conn: Connection,
    *,
    start: datetime,
    end: datetime,
    channel: str | None,
    now: datetime,
) -> ReturnsReconciliation:
    """The returns created in [start, end) (of one channel, if given) as they stand now.

    Per return: credited = the ERP credit notes posted for it; received = the units the WMS
    received at the order's prices; channel refunded = what the channel paid back on its own.
    Listed: a channel refund the ERP has not credited (or credited beyond), credit or channel
    refund beyond what the warehouse received. Refused returns move no money and are skipped.
    """
    rows = [
        row
        for row in repo.returns_created_between(conn, start, end, channel)
        if row.status is not ReturnStatus.REFUSED
    ]
    mismatches: list[Mismatch] = []
    totals: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        currency = row.currency
        credited = sum((refund.credited_total for refund in row.refunds), Decimal(0))
        received = sum(
            ((line.unit_price or Decimal(0)) * (line.quantity_received or 0) for line in row.lines),
            Decimal(0),
        )
        by_channel = None if row.channel_refund is None else row.channel_refund.amount.amount
        counts[currency] += 1
        sums = totals[currency]
        sums[0] += credited
        sums[1] += received
        sums[2] += by_channel or Decimal(0)

        def mismatch(
            code: MismatchCode,
            amount: Decimal,
            detail: str,
            *,
            row: repo.ReturnRow = row,
            credited: Decimal = credited,
            received: Decimal = received,
            by_channel: Decimal | None = by_channel,
        ) -> None:
            currency = row.currency
            mismatches.append(
                Mismatch(
                    return_id=row.return_id,
                    order_id=row.order_id,
                    channel=row.channel,
                    channel_return_id=row.channel_return_id,
                    status=row.status.value,
                    code=code,
                    amount=money(amount, currency),
                    credited=money(credited, currency),
                    received=money(received, currency),
                    channel_refunded=None if by_channel is None else money(by_channel, currency),
                    detail=detail,
                )
            )

        if by_channel is not None:
            if by_channel > credited:
                mismatch(
                    MismatchCode.CHANNEL_REFUND_NOT_CREDITED,
                    by_channel - credited,
                    f"the channel refunded {by_channel} {currency}, the ERP credited "
                    f"{credited} {currency}",
                )
            elif credited > by_channel:
                mismatch(
                    MismatchCode.CREDITED_BEYOND_CHANNEL_REFUND,
                    credited - by_channel,
                    f"the ERP credited {credited} {currency}, the channel refunded only "
                    f"{by_channel} {currency}",
                )
            if by_channel > received:
                mismatch(
                    MismatchCode.CHANNEL_REFUND_WITHOUT_RECEIPT,
                    by_channel - received,
                    f"the channel refunded {by_channel} {currency}, the warehouse received "
                    f"goods worth {received} {currency}",
                )
        if credited > received:
            mismatch(
                MismatchCode.CREDITED_WITHOUT_RECEIPT,
                credited - received,
                f"the ERP credited {credited} {currency}, the warehouse received goods worth "
                f"{received} {currency}",
            )
    return ReturnsReconciliation(
        period_start=start,
        period_end=end,
        channel=channel,
        generated_at=now,
        totals=[
            PeriodTotals(
                currency=currency,
                returns=counts[currency],
                credited=money(sums[0], currency),
                received=money(sums[1], currency),
                channel_refunded=money(sums[2], currency),
            )
            for currency, sums in sorted(totals.items())
        ],
        mismatches=mismatches,
    )
