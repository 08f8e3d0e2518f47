"""Errors of exception handling, and the problems the process API answers them with."""

from __future__ import annotations

from contracts.exceptions import ExceptionStatus
from gateway_infra.problems import ProblemType

EXCEPTION_CLOSED = ProblemType(
    "exception-closed", "The exception is closed: it was resolved or ignored", 409
)
ACTION_NOT_APPLICABLE = ProblemType(
    "exception-action-not-applicable", "This action does not apply to this exception", 409
)


class ExceptionNotFound(LookupError):
    """No exception with this id."""

    def __init__(self, exception_id: str) -> None:
        super().__init__(exception_id)
        self.exception_id = exception_id


class ExceptionClosed(Exception):
    """The exception was resolved or ignored already; it takes no more actions."""

    def __init__(self, exception_id: str, status: ExceptionStatus) -> None:
        super().__init__(f"exception {exception_id} is {status.value}")
        self.exception_id = exception_id
        self.status = status


class ActionNotApplicable(Exception):
    """The action makes no sense for this exception (e.g. retry without a failed step)."""
