"""HTTP surface of channel profiles for internal apps (/process/v1/channels): thin handlers."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request, Response, Security

from contracts.channel import ChannelProfile
from contracts.common import ChannelCode
from gateway_infra.auth.dependencies import authenticate
from gateway_infra.auth.tokens import Principal
from gateway_infra.openapi import problem_responses
from gateway_infra.problems import BAD_REQUEST, NOT_FOUND, VALIDATION_ERROR, ProblemError
from process_api.channels.errors import PRECONDITION_FAILED, ChannelProfileVersionConflict
from process_api.channels.service import ChannelProfiles


def get_channel_profiles(request: Request) -> ChannelProfiles:
    service: ChannelProfiles = request.app.state.channels
    return service


ChannelProfilesDep = Annotated[ChannelProfiles, Depends(get_channel_profiles)]
ChannelPath = Annotated[ChannelCode, Path(description="Channel code, e.g. webshop or amazon_de.")]

READ_SCOPE = "process:channels:read"
WRITE_SCOPE = "process:channels:write"
READ = [Security(authenticate, scopes=[READ_SCOPE])]

_ETAG_HEADER: dict[str, Any] = {
    "ETag": {
        "description": 'The profile\'s version, e.g. "v3"; send it back in If-Match to update.',
        "schema": {"type": "string", "pattern": '^"v[0-9]+"$'},
    }
}
_ETAG = re.compile(r'^(?:W/)?"v([0-9]{1,9})"$')
# What If-Match takes: one entity tag, or nothing at all (an empty header sets no condition).
_IF_MATCH_PATTERN = r'^((?:W/)?"v[0-9]{1,9}")?$'

router = APIRouter(
    prefix="/v1/channels", tags=["channels"], responses=problem_responses(401, 403, 422)
)


def etag(version: int) -> str:
    return f'"v{version}"'


def expected_version(if_match: str | None) -> int | None:
    """The version an If-Match header asks for: one entity tag as sent in ETag, or none (no
    header, or an empty one)."""
    if if_match is None or not if_match.strip():
        return None
    match = _ETAG.match(if_match.strip())
    if match is None:
        raise ProblemError(
            BAD_REQUEST,
            'If-Match must be one entity tag as returned in ETag, e.g. "v3"',
            errors=[{"parameter": "If-Match", "in": "header", "detail": "malformed entity tag"}],
        )
    return int(match.group(1))


@router.get("", summary="Every channel profile", dependencies=READ)
async def list_channel_profiles(service: ChannelProfilesDep) -> list[ChannelProfile]:
    """All channel profiles, ordered by channel code."""
    return await service.list()


@router.get(
    "/{channel}",
    summary="One channel profile",
    name="process_get_channel_profile",
    dependencies=READ,
    responses={200: {"headers": _ETAG_HEADER}, **problem_responses(404)},
)
async def get_channel_profile(
    service: ChannelProfilesDep, channel: ChannelPath, response: Response
) -> ChannelProfile:
    """The channel's profile; its version is in the ETag header."""
    stored = await service.read(channel)
    if stored is None:
        raise ProblemError(NOT_FOUND, f"no channel profile {channel!r}")
    response.headers["ETag"] = etag(stored.version)
    return stored.profile


@router.put(
    "/{channel}",
    summary="Create or replace a channel profile",
    responses={
        200: {"description": "Replaced (or unchanged).", "headers": _ETAG_HEADER},
        201: {"model": ChannelProfile, "description": "Created.", "headers": _ETAG_HEADER},
        **problem_responses(400, 412),
    },
)
async def put_channel_profile(
    service: ChannelProfilesDep,
    channel: ChannelPath,
    profile: ChannelProfile,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Security(authenticate, scopes=[WRITE_SCOPE])],
    if_match: Annotated[
        str | None,
        Header(
            description='Update only if the profile is still at this version, e.g. "v3".',
            json_schema_extra={"pattern": _IF_MATCH_PATTERN},
        ),
    ] = None,
) -> ChannelProfile:
    """Validate and store the profile as the channel's next version; the change is audited.

    Sending back the ETag of a GET in If-Match makes the update safe against concurrent changes
    (412 when the profile has moved on). Storing an equal profile changes nothing.
    """
    if profile.channel != channel:
        raise ProblemError(
            VALIDATION_ERROR,
            f"the body is the profile of channel {profile.channel!r}, the path names {channel!r}",
            errors=[{"pointer": "#/channel", "detail": "must equal the channel in the path"}],
        )
    expected = expected_version(if_match)
    try:
        saved = await service.put(
            profile, actor=f"client:{principal.client_id}", expected_version=expected
        )
    except ChannelProfileVersionConflict as exc:
        headers = {} if exc.current is None else {"ETag": etag(exc.current)}
        raise ProblemError(
            PRECONDITION_FAILED,
            str(exc),
            headers=headers,
            channel=channel,
            expected_version=exc.expected,
            current_version=exc.current,
        ) from exc
    response.headers["ETag"] = etag(saved.version)
    if saved.created:
        response.status_code = 201
        response.headers["Location"] = str(
            request.url_for("process_get_channel_profile", channel=channel)
        )
    return saved.profile
