"""Exception records of the process layer: what needs a person, raised once per open problem,
routed to an owner team by configured rules, escalated when its SLA passes, and closed by an
action (retry of the failed step, cancel, fixed by hand, ignore)."""

from process_api.exceptions.errors import (
    ActionNotApplicable,
    ExceptionClosed,
    ExceptionNotFound,
)
from process_api.exceptions.policies import WORKFLOW_POLICIES, WorkflowPolicy, policy_for
from process_api.exceptions.repository import (
    escalate_overdue,
    get_exception,
    list_exceptions,
    open_exception,
    resolve_exceptions,
    resolve_step_exceptions,
)
from process_api.exceptions.routing import (
    ExceptionRoutingConfigError,
    Route,
    Routing,
    RoutingRule,
    install_routing,
    load_routing_config,
)
from process_api.exceptions.steps import STEP_FAILED, StepSupervisor, give_up_to_exception

__all__ = [
    "STEP_FAILED",
    "WORKFLOW_POLICIES",
    "ActionNotApplicable",
    "ExceptionClosed",
    "ExceptionNotFound",
    "ExceptionRoutingConfigError",
    "Route",
    "Routing",
    "RoutingRule",
    "StepSupervisor",
    "WorkflowPolicy",
    "escalate_overdue",
    "get_exception",
    "give_up_to_exception",
    "install_routing",
    "list_exceptions",
    "load_routing_config",
    "open_exception",
    "policy_for",
    "resolve_exceptions",
    "resolve_step_exceptions",
]
