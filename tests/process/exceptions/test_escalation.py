"""An exception still unresolved when its SLA passes escalates: severity one step up, an
exception.escalated event, and due again one SLA later, so it escalates again if still ignored."""

from __future__ import annotations

from datetime import timedelta

from contracts.exceptions import ExceptionStatus, ResolveAction, Severity
from gateway import Gateway
from gateway_infra.clock import ManualClock
from process_api.exceptions import policy_for
from tests.process.exceptions.support import events, exception, raise_exception

SLA = policy_for("inventory_sync").sla  # no rule of the tests' routing names inventory sync


async def run_sla_checks(gateway: Gateway) -> None:
    while await gateway.scheduler.run_due():
        pass


async def test_an_exception_past_its_sla_escalates_once_and_again_while_ignored(
    gateway: Gateway, clock: ManualClock
) -> None:
    await gateway.exception_escalation.ensure_scheduled()
    exception_id = await raise_exception(gateway, severity=Severity.MEDIUM)
    raised = await exception(gateway, exception_id)
    assert raised.due_at == clock.now() + SLA

    clock.advance(SLA - timedelta(minutes=1))
    await run_sla_checks(gateway)
    assert (await exception(gateway, exception_id)).escalations == 0

    clock.advance(timedelta(minutes=1))
    await run_sla_checks(gateway)
    first = await exception(gateway, exception_id)
    clock.advance(timedelta(minutes=5))
    await run_sla_checks(gateway)
    assert (await exception(gateway, exception_id)).escalations == 1  # not again within the SLA

    clock.advance(SLA)
    await run_sla_checks(gateway)
    second = await exception(gateway, exception_id)

    assert (first.severity, first.escalations) == (Severity.HIGH, 1)
    assert first.due_at is not None and raised.due_at is not None
    assert first.due_at >= raised.due_at + SLA
    assert (second.severity, second.escalations) == (Severity.CRITICAL, 2)
    assert second.status is ExceptionStatus.OPEN
    assert [entry.action for entry in second.history] == ["raised", "escalated", "escalated"]
    escalated = events(gateway, "exception.escalated")
    assert [e["data"]["severity"] for e in escalated] == ["high", "critical"]
    assert [e["data"]["previous_severity"] for e in escalated] == ["medium", "high"]
    assert [e["data"]["escalations"] for e in escalated] == [1, 2]
    assert escalated[0]["data"]["exception_id"] == exception_id
    assert escalated[0]["data"]["owner_team"] == "operations"
    assert escalated[0]["subject"] == "inventory/MUG-RED-350"


async def test_a_critical_exception_still_escalates_and_stays_critical(
    gateway: Gateway, clock: ManualClock
) -> None:
    exception_id = await raise_exception(gateway, severity=Severity.CRITICAL)

    clock.advance(SLA)
    assert await gateway.exceptions.escalate() == 1

    escalated = await exception(gateway, exception_id)
    assert (escalated.severity, escalated.escalations) == (Severity.CRITICAL, 1)
    assert [e["data"]["severity"] for e in events(gateway, "exception.escalated")] == ["critical"]


async def test_an_acknowledged_exception_escalates_but_a_resolved_one_does_not(
    gateway: Gateway, clock: ManualClock
) -> None:
    worked_on = await raise_exception(gateway)
    settled = await raise_exception(gateway, subject="inventory/TEE-ORG-M")
    await gateway.exceptions.acknowledge(worked_on, actor="ops")
    await gateway.exceptions.resolve(
        settled, ResolveAction.FIXED_BY_HAND, actor="ops", note="counted again by hand"
    )

    clock.advance(SLA)
    assert await gateway.exceptions.escalate() == 1

    assert (await exception(gateway, worked_on)).escalations == 1
    assert (await exception(gateway, worked_on)).status is ExceptionStatus.ACKNOWLEDGED
    assert (await exception(gateway, settled)).escalations == 0


async def test_a_routing_rules_sla_decides_when_it_escalates(
    gateway: Gateway, clock: ManualClock
) -> None:
    exception_id = await raise_exception(
        gateway,
        workflow="order_capture",
        code="acknowledgement_at_risk",
        subject="order/ord_1",
        object_ids={"order_id": "ord_1"},
    )
    raised = await exception(gateway, exception_id)
    assert (raised.owner_team, raised.severity) == ("order-desk", Severity.HIGH)

    clock.advance(timedelta(minutes=59))
    assert await gateway.exceptions.escalate() == 0
    clock.advance(timedelta(minutes=1))  # the "orders" rule's SLA: one hour
    assert await gateway.exceptions.escalate() == 1
    assert (await exception(gateway, exception_id)).severity is Severity.CRITICAL


async def test_an_explicit_due_time_wins_over_the_sla(gateway: Gateway, clock: ManualClock) -> None:
    deadline = clock.now() + timedelta(minutes=5)
    exception_id = await raise_exception(gateway, due_at=deadline)

    assert (await exception(gateway, exception_id)).due_at == deadline
    clock.advance(timedelta(minutes=5))
    assert await gateway.exceptions.escalate() == 1
