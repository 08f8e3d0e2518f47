"""How hard each workflow tries before a person is asked, and how fast that person must act.

Order capture, inventory sync, shipment confirmation and returns are critical: their steps retry
longest and their exceptions get the shortest SLAs. Reference data gets lighter controls. Routing
rules from configuration may give a shorter or longer SLA per exception; these are the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from contracts.exceptions import Severity
from gateway_infra.scheduler import RetryPolicy


class Criticality(StrEnum):
    CRITICAL = "critical"
    STANDARD = "standard"
    LIGHT = "light"


@dataclass(frozen=True)
class WorkflowPolicy:
    """Retries of a workflow's steps, and what an exception of that workflow starts with."""

    criticality: Criticality
    retry: RetryPolicy
    sla: timedelta
    """How long an exception may stay unresolved before it escalates."""
    severity: Severity
    """Severity of an exception raised when one of the workflow's steps gives up."""


CRITICAL_RETRY = RetryPolicy(
    max_attempts=50, base_delay=timedelta(seconds=5), max_delay=timedelta(minutes=10)
)
"""About six hours of retries: an ERP or warehouse outage of an afternoon raises nothing."""
STANDARD_RETRY = RetryPolicy(
    max_attempts=20, base_delay=timedelta(seconds=5), max_delay=timedelta(minutes=10)
)
LIGHT_RETRY = RetryPolicy(
    max_attempts=8, base_delay=timedelta(seconds=30), max_delay=timedelta(minutes=30)
)


def _policy(criticality: Criticality, sla: timedelta) -> WorkflowPolicy:
    retry, severity = {
        Criticality.CRITICAL: (CRITICAL_RETRY, Severity.HIGH),
        Criticality.STANDARD: (STANDARD_RETRY, Severity.MEDIUM),
        Criticality.LIGHT: (LIGHT_RETRY, Severity.LOW),
    }[criticality]
    return WorkflowPolicy(criticality, retry, sla, severity)


_MINUTES, _HOURS = timedelta(minutes=1), timedelta(hours=1)
WORKFLOW_POLICIES: dict[str, WorkflowPolicy] = {
    "order_capture": _policy(Criticality.CRITICAL, 30 * _MINUTES),
    "inventory_sync": _policy(Criticality.CRITICAL, 30 * _MINUTES),
    "shipment_confirmation": _policy(Criticality.CRITICAL, 1 * _HOURS),
    "fulfilment": _policy(Criticality.CRITICAL, 1 * _HOURS),
    "returns": _policy(Criticality.CRITICAL, 2 * _HOURS),
    "invoicing": _policy(Criticality.STANDARD, 4 * _HOURS),
    "settlement": _policy(Criticality.STANDARD, 8 * _HOURS),
    "pricing": _policy(Criticality.STANDARD, 4 * _HOURS),
    "reference_data": _policy(Criticality.LIGHT, 24 * _HOURS),
}
"""Per workflow: critical ones retry longest, raise high-severity exceptions with short SLAs."""
DEFAULT_POLICY = _policy(Criticality.STANDARD, 4 * _HOURS)
"""For a workflow the table does not name."""


def policy_for(workflow: str) -> WorkflowPolicy:
    return WORKFLOW_POLICIES.get(workflow, DEFAULT_POLICY)
