"""HTTP surface of the exception queue for internal apps (/process/v1/exceptions)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Security
from pydantic import BaseModel

from contracts.common import ChannelCode, Identifier
from contracts.exceptions import ExceptionRecord, ExceptionStatus
from gateway_infra.auth.dependencies import authenticate
from gateway_infra.openapi import problem_responses
from gateway_infra.problems import NOT_FOUND, ProblemError
from process_api.exceptions.service import ExceptionQueue


def get_queue(request: Request) -> ExceptionQueue:
    queue: ExceptionQueue = request.app.state.exceptions
    return queue


QueueDep = Annotated[ExceptionQueue, Depends(get_queue)]
READ = [Security(authenticate, scopes=["process:exceptions:read"])]

router = APIRouter(
    prefix="/v1/exceptions",
    tags=["exceptions"],
    responses=problem_responses(401, 403, 422),
    dependencies=READ,
)


class ExceptionList(BaseModel):
    """Exceptions, newest first."""

    items: list[ExceptionRecord]


@router.get("", summary="Exceptions, newest first, filtered")
async def list_exceptions(
    queue: QueueDep,
    status: Annotated[ExceptionStatus | None, Query()] = None,
    channel: Annotated[ChannelCode | None, Query()] = None,
    workflow: Annotated[str | None, Query(max_length=40, pattern=r"^[a-z_]+$")] = None,
    subject: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_./:-]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ExceptionList:
    return ExceptionList(
        items=await queue.list(
            status=status, channel=channel, workflow=workflow, subject=subject, limit=limit
        )
    )


@router.get(
    "/{exception_id}", summary="One exception with its history", responses=problem_responses(404)
)
async def get_exception(
    queue: QueueDep, exception_id: Annotated[Identifier, Path()]
) -> ExceptionRecord:
    found = await queue.get(exception_id)
    if found is None:
        raise ProblemError(NOT_FOUND, f"no exception {exception_id!r}")
    return found
