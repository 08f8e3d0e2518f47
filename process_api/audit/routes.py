"""HTTP surface of the audit log for internal apps (/process/v1/audit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Security

from contracts.audit import AuditPage
from contracts.common import ChannelCode
from gateway_infra.auth.dependencies import authenticate
from gateway_infra.openapi import problem_responses
from process_api.audit.log import AuditLog

READ_SCOPE = "process:audit:read"


def get_audit(request: Request) -> AuditLog:
    audit: AuditLog = request.app.state.audit
    return audit


AuditDep = Annotated[AuditLog, Depends(get_audit)]

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=problem_responses(401, 403, 422))


@router.get(
    "",
    summary="The audit log, newest first: who changed what, when, before and after",
    dependencies=[Security(authenticate, scopes=[READ_SCOPE])],
)
async def list_audit_entries(
    audit: AuditDep,
    actor: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$",
            description="e.g. `operator:alice` or `client:<client_id>`",
        ),
    ] = None,
    subject: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=r"^[A-Za-z0-9_./:-]+$",
            description="e.g. `channel_profile/webshop`, `price_book/pb_...`, `exception/exc_...`",
        ),
    ] = None,
    action: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_.]+$")] = None,
    channel: Annotated[ChannelCode | None, Query()] = None,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    items = await audit.entries(
        actor=actor,
        subject=subject,
        action=action,
        channel=channel,
        before_id=int(cursor) if cursor else None,
        limit=limit + 1,
    )
    more = len(items) > limit
    items = items[:limit]
    return AuditPage(items=items, next_cursor=str(items[-1].id) if more and items else None)
