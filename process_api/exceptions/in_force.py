"""The exception policies in force (routing rules from configuration, retry and SLA policies per
workflow) as one document, and its changes in the audit log.

Neither can be changed through an API: the rules come from GATEWAY_EXCEPTION_ROUTING, the
workflow policies with a release. So a gateway compares what it starts with to the last recorded
version and records the change (actor `config`) when they differ."""

from __future__ import annotations

from pydantic import JsonValue
from sqlalchemy import select

from gateway_infra.unit_of_work import UnitOfWork
from process_api import audit
from process_api.exceptions.policies import DEFAULT_POLICY, WORKFLOW_POLICIES, WorkflowPolicy
from process_api.exceptions.routing import Routing
from process_api.tables import audit_log

SUBJECT = "exception_policies"
CHANGED = "exception_policies.changed"


def _workflow(policy: WorkflowPolicy) -> JsonValue:
    return {
        "criticality": policy.criticality.value,
        "severity": policy.severity.value,
        "sla_seconds": int(policy.sla.total_seconds()),
        "retry": {
            "max_attempts": policy.retry.max_attempts,
            "base_delay_seconds": policy.retry.base_delay.total_seconds(),
            "max_delay_seconds": policy.retry.max_delay.total_seconds(),
        },
    }


def policies_in_force(routing: Routing) -> dict[str, JsonValue]:
    return {
        "routing_rules": [
            rule.model_dump(mode="json", exclude_none=True) for rule in routing.rules
        ],
        "workflows": {name: _workflow(p) for name, p in sorted(WORKFLOW_POLICIES.items())},
        "default_workflow": _workflow(DEFAULT_POLICY),
    }


def record_policies_in_force(uow: UnitOfWork, routing: Routing, *, actor: str = "config") -> bool:
    """Record the policies in force when they differ from the last recorded ones; whether so."""
    last = uow.conn.execute(
        select(audit_log.c.after)
        .where(audit_log.c.subject == SUBJECT, audit_log.c.action == CHANGED)
        .order_by(audit_log.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    current = policies_in_force(routing)
    if last == current:
        return False
    audit.record(uow, actor=actor, action=CHANGED, subject=SUBJECT, before=last, after=current)
    return True
