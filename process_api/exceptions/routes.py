"""HTTP surface of the exception queue for internal apps (/process/v1/exceptions)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response, Security
from pydantic import BaseModel

from contracts.common import ChannelCode, Identifier
from contracts.exceptions import (
    AcknowledgeRequest,
    ExceptionRecord,
    ExceptionStatus,
    ResolveAction,
    ResolveRequest,
    Severity,
)
from gateway_infra.auth.dependencies import authenticate
from gateway_infra.auth.tokens import Principal
from gateway_infra.openapi import problem_responses
from gateway_infra.problems import NOT_FOUND, VALIDATION_ERROR, ProblemError
from process_api.exceptions.errors import (
    ACTION_NOT_APPLICABLE,
    EXCEPTION_CLOSED,
    ActionNotApplicable,
    ExceptionClosed,
    ExceptionNotFound,
)
from process_api.exceptions.service import ExceptionQueue

READ_SCOPE = "process:exceptions:read"
WRITE_SCOPE = "process:exceptions:write"


def get_queue(request: Request) -> ExceptionQueue:
    queue: ExceptionQueue = request.app.state.exceptions
    return queue


QueueDep = Annotated[ExceptionQueue, Depends(get_queue)]
ExceptionIdPath = Annotated[Identifier, Path()]
Writer = Annotated[Principal, Security(authenticate, scopes=[WRITE_SCOPE])]
READ = [Security(authenticate, scopes=[READ_SCOPE])]

router = APIRouter(
    prefix="/v1/exceptions", tags=["exceptions"], responses=problem_responses(401, 403, 422)
)


class ExceptionList(BaseModel):
    """Exceptions, newest first."""

    items: list[ExceptionRecord]


@router.get("", summary="Exceptions, newest first, filtered", dependencies=READ)
async def list_exceptions(
    queue: QueueDep,
    status: Annotated[ExceptionStatus | None, Query()] = None,
    channel: Annotated[ChannelCode | None, Query()] = None,
    workflow: Annotated[str | None, Query(max_length=40, pattern=r"^[a-z_]+$")] = None,
    subject: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_./:-]+$")] = None,
    owner_team: Annotated[
        str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    ] = None,
    severity: Annotated[Severity | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ExceptionList:
    return ExceptionList(
        items=await queue.list(
            status=status,
            channel=channel,
            workflow=workflow,
            subject=subject,
            owner_team=owner_team,
            severity=severity,
            limit=limit,
        )
    )


@router.get(
    "/{exception_id}",
    summary="One exception with its history",
    responses=problem_responses(404),
    dependencies=READ,
)
async def get_exception(queue: QueueDep, exception_id: ExceptionIdPath) -> ExceptionRecord:
    found = await queue.get(exception_id)
    if found is None:
        raise ProblemError(NOT_FOUND, f"no exception {exception_id!r}")
    return found


@router.post(
    "/{exception_id}/acknowledge",
    summary="Take an open exception on (acknowledging again changes nothing)",
    responses=problem_responses(404, 409, 413, 415),
)
async def acknowledge_exception(
    queue: QueueDep,
    exception_id: ExceptionIdPath,
    principal: Writer,
    body: Annotated[AcknowledgeRequest | None, Body()] = None,
) -> ExceptionRecord:
    """open -> acknowledged, recorded in the history with who did it. A resolved or ignored
    exception answers 409."""
    try:
        return await queue.acknowledge(
            exception_id, actor=_actor(principal), note=body.note if body else None
        )
    except (ExceptionNotFound, ExceptionClosed) as exc:
        raise _problem(exc) from exc


@router.post(
    "/{exception_id}/resolve",
    summary="Resolve an exception with an action (retry, cancel, fixed_by_hand, ignore)",
    responses={
        200: {"description": "Closed: resolved, or ignored."},
        202: {
            "model": ExceptionRecord,
            "description": "retry: the failed step runs again now; the exception stays "
            "acknowledged and is resolved once the step succeeds (reopened if it gives up again).",
        },
        **problem_responses(404, 409, 413, 415),
    },
)
async def resolve_exception(
    queue: QueueDep,
    exception_id: ExceptionIdPath,
    body: ResolveRequest,
    principal: Writer,
    response: Response,
) -> ExceptionRecord:
    """- **retry**: run the step that gave up again (only for exceptions raised by a failed step).
    - **cancel**: cancel the order the exception is about (409 once it has shipped).
    - **fixed_by_hand**: repaired outside the gateway; the note says how.
    - **ignore**: nothing will be done; the note says why.
    - **replay**: a disabled webhook endpoint's exception, once the endpoint is enabled again:
      its dead letters are sent again.

    A resolved or ignored exception answers 409."""
    if body.action in (ResolveAction.FIXED_BY_HAND, ResolveAction.IGNORE) and not body.note:
        raise ProblemError(
            VALIDATION_ERROR,
            f"{body.action.value} needs a note saying why",
            errors=[{"pointer": "#/note", "detail": f"required with {body.action.value}"}],
        )
    try:
        record = await queue.resolve(
            exception_id, body.action, actor=_actor(principal), note=body.note
        )
    except (ExceptionNotFound, ExceptionClosed, ActionNotApplicable) as exc:
        raise _problem(exc) from exc
    if not record.status.closed:
        response.status_code = 202
    return record


def _actor(principal: Principal) -> str:
    return f"client:{principal.client_id}"


def _problem(exc: Exception) -> ProblemError:
    if isinstance(exc, ExceptionNotFound):
        return ProblemError(NOT_FOUND, f"no exception {exc.exception_id!r}")
    if isinstance(exc, ExceptionClosed):
        return ProblemError(
            EXCEPTION_CLOSED,
            f"exception {exc.exception_id} is {exc.status.value}; it takes no more actions",
            exception_status=exc.status.value,
        )
    return ProblemError(ACTION_NOT_APPLICABLE, str(exc))
