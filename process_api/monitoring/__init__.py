"""Operational figures of the process layer: the business figures /metrics reads from the
database, and the SLA monitors that turn a breach into an exception (docs/metrics.md)."""

from process_api.monitoring.figures import business_figures, read_figures
from process_api.monitoring.sla import (
    SLA_CHECK_JOB,
    SLA_CODES,
    Breach,
    CheckResult,
    SlaCheck,
    SlaMonitor,
    SlaMonitors,
    SlaMonitorsConfigError,
    SlaWorkflow,
    find_breaches,
    load_sla_monitors,
)

__all__ = [
    "SLA_CHECK_JOB",
    "SLA_CODES",
    "Breach",
    "CheckResult",
    "SlaCheck",
    "SlaMonitor",
    "SlaMonitors",
    "SlaMonitorsConfigError",
    "SlaWorkflow",
    "business_figures",
    "find_breaches",
    "load_sla_monitors",
    "read_figures",
]
