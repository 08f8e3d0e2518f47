"""Partner webhook subscriptions: where the calling channel's events are pushed, signed.

The same in every version (webhooks carry neither money nor quantities). The signing secret is
answered in clear when a webhook is created and when its secret is rotated; it is stored
encrypted only. An idempotent retry of either request answers the same secret again (read back
from the encrypted store, so the stored idempotent answer never holds it), as long as it is
still the webhook's current secret.

(No `from __future__ import annotations` here: FastAPI reads the models from the annotations of
functions defined inside the factory.)
"""

import json
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Request, Response, Security
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.common import JsonTypedModel
from gateway_infra.delivery import (
    InvalidSubscription,
    Subscription,
    SubscriptionConflict,
    Subscriptions,
    SubscriptionState,
    UnknownSubscription,
)
from gateway_infra.delivery.safety import MAX_URL_LENGTH
from gateway_infra.openapi import problem_responses
from gateway_infra.problems import NOT_FOUND, ProblemError, ProblemType
from partner_api.edge import IdempotentCall, Partner, PartnerRoute, ensure_own, idempotent, partner
from partner_api.events import PARTNER_EVENT_TYPES

MAX_OVERLAP_SECONDS = 7 * 24 * 3600

WEBHOOK_REFUSED = ProblemType(
    "webhook-refused", "The webhook URL is not an allowed destination", 422
)
WEBHOOK_LIMIT = ProblemType(
    "webhook-limit-reached", "The channel has as many webhooks as it may have", 409
)
WEBHOOK_ID_PATTERN = r"^whk_[0-9a-f]{1,36}$"


def _known_types(value: list[str]) -> list[str]:
    unknown = [t for t in value if t not in PARTNER_EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(PARTNER_EVENT_TYPES)}"
        )
    return list(dict.fromkeys(value))


EVENT_TYPE_SCHEMA: dict[str, Any] = {"enum": list(PARTNER_EVENT_TYPES)}


class WebhookCreate(BaseModel):
    """A new webhook of the calling channel."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description=(
            "Where to POST the events: an https URL on a public address (private, loopback and "
            "link-local addresses are refused). Redirects are not followed."
        ),
        examples=["https://hooks.example.com/retail-sync"],
    )
    event_types: list[Annotated[str, Field(json_schema_extra=EVENT_TYPE_SCHEMA)]] = Field(
        min_length=1,
        max_length=len(PARTNER_EVENT_TYPES),
        description="The event types to receive, at least one.",
    )
    description: str | None = Field(default=None, max_length=200)

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        return _known_types(value)


class SecretRotation(JsonTypedModel):
    """How long the replaced secret keeps signing beside the new one."""

    model_config = ConfigDict(extra="forbid")

    overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_OVERLAP_SECONDS,
        description=(
            "Seconds during which each call carries a signature by the old and one by the new "
            "secret; 0 ends the old secret at once. Default: the gateway's (24 hours unless "
            "configured otherwise)."
        ),
    )


class Webhook(BaseModel):
    """A webhook of the calling channel, without its secret."""

    id: str
    url: str
    event_types: list[str]
    description: str | None
    state: Literal["active", "disabled"] = Field(
        description=(
            "`disabled` after every call failed for the configured period (or by an operator): "
            "no calls are made until it is enabled again; events keep waiting for it."
        )
    )
    disabled_reason: str | None
    failing_since: datetime | None = Field(
        description="Since when every call has failed; null while calls succeed."
    )
    secret_version: int = Field(description="1 at creation, one more at each rotation.")
    previous_secret_expires_at: datetime | None = Field(
        description="Until when the secret replaced by the last rotation still signs calls."
    )
    created_at: datetime
    updated_at: datetime


class WebhookWithSecret(Webhook):
    """A webhook with its signing secret: answered by create and rotate-secret only."""

    secret: str | None = Field(
        description=(
            "The signing secret (`whsec_` + base64), for a Standard Webhooks verifier. Store it "
            "now: it is never shown again, except to an idempotent retry of the same request "
            "while it is still the current secret (null otherwise)."
        )
    )


class WebhookList(BaseModel):
    """The calling channel's webhooks, oldest first."""

    items: list[Webhook]


def webhook_view(subscription: Subscription) -> Webhook:
    return Webhook(
        id=subscription.subscription_id,
        url=subscription.url,
        event_types=subscription.event_types,
        description=subscription.description,
        state="active" if subscription.state is SubscriptionState.ACTIVE else "disabled",
        disabled_reason=subscription.disabled_reason,
        failing_since=subscription.failing_since,
        secret_version=subscription.secret_version,
        previous_secret_expires_at=subscription.previous_secret_expires_at,
        created_at=subscription.created_at,
        updated_at=subscription.updated_at,
    )


def build_webhooks_router() -> APIRouter:
    """The webhook endpoints: the same in every version."""
    router = APIRouter(
        route_class=PartnerRoute,
        prefix="/webhooks",
        tags=["webhooks"],
        responses=problem_responses(401, 403, 422, 429),
    )

    def subscriptions_of(request: Request) -> Subscriptions:
        found: Subscriptions = request.app.state.webhooks
        return found

    async def own_webhook(request: Request, caller: Partner, webhook_id: str) -> Subscription:
        found = await subscriptions_of(request).get(webhook_id)
        if found is None or found.state is SubscriptionState.DELETED:
            raise ProblemError(NOT_FOUND, f"no webhook {webhook_id!r}")
        ensure_own(caller, found.channel, "webhook", webhook_id)
        return found

    async def with_secret(
        request: Request, response: Response, secret: str | None, *, replayed: bool
    ) -> Response:
        """The answer with the secret added: the one just made, or read back for a replay."""
        if response.status_code not in (200, 201):
            return response
        body = json.loads(bytes(response.body))
        if replayed:
            secret = await subscriptions_of(request).current_secret(
                body["id"], version=body["secret_version"]
            )
        headers = {
            name: value
            for name, value in response.headers.items()
            if name.lower() not in ("content-length", "content-type")
        }
        return JSONResponse(
            {**body, "secret": secret}, status_code=response.status_code, headers=headers
        )

    @router.post(
        "",
        summary="Register a webhook of the calling channel",
        description=(
            "Events of the channel of the types named are POSTed to the URL, signed per the "
            "Standard Webhooks scheme with the secret answered here (once). Events that occur "
            "from now on are delivered; read earlier ones from GET /events."
        ),
        status_code=201,
        response_model=WebhookWithSecret,
        responses={
            201: {"description": "Registered; the answer holds its secret."},
            **problem_responses(400, 409, 413, 415),
        },
    )
    async def create_webhook(
        request: Request,
        body: WebhookCreate,
        call: Annotated[IdempotentCall, Security(idempotent, scopes=["events:read"])],
    ) -> Response:
        made: dict[str, str] = {}

        async def produce() -> Response:
            try:
                created = await subscriptions_of(request).create(
                    channel=call.caller.channel,
                    url=body.url,
                    event_types=body.event_types,
                    client_id=call.caller.client_id,
                    description=body.description,
                )
            except InvalidSubscription as exc:
                raise ProblemError(WEBHOOK_REFUSED, str(exc)) from exc
            except SubscriptionConflict as exc:
                raise ProblemError(WEBHOOK_LIMIT, str(exc)) from exc
            made["secret"] = created.secret
            view = webhook_view(created.subscription)
            location = f"{str(request.url).split('?')[0].rstrip('/')}/{view.id}"
            return JSONResponse(
                view.model_dump(mode="json"), status_code=201, headers={"Location": location}
            )

        response = await call.idempotency.run(produce)
        return await with_secret(request, response, made.get("secret"), replayed=not made)

    @router.get("", summary="The calling channel's webhooks", response_model=WebhookList)
    async def list_webhooks(
        request: Request,
        caller: Annotated[Partner, Security(partner, scopes=["events:read"])],
    ) -> Any:
        found = await subscriptions_of(request).list(channel=caller.channel)
        return WebhookList(items=[webhook_view(s) for s in found])

    @router.get(
        "/{webhook_id}",
        summary="One webhook of the calling channel",
        response_model=Webhook,
        responses=problem_responses(404),
    )
    async def get_webhook(
        request: Request,
        webhook_id: Annotated[str, Path(pattern=WEBHOOK_ID_PATTERN)],
        caller: Annotated[Partner, Security(partner, scopes=["events:read"])],
    ) -> Any:
        return webhook_view(await own_webhook(request, caller, webhook_id))

    @router.delete(
        "/{webhook_id}",
        summary="Remove a webhook of the calling channel",
        description="No more calls are made to it, including those not yet delivered.",
        status_code=204,
        response_class=Response,
        responses=problem_responses(404),
    )
    async def delete_webhook(
        request: Request,
        webhook_id: Annotated[str, Path(pattern=WEBHOOK_ID_PATTERN)],
        caller: Annotated[Partner, Security(partner, scopes=["events:read"])],
    ) -> Response:
        await own_webhook(request, caller, webhook_id)
        try:
            await subscriptions_of(request).delete(webhook_id)
        except UnknownSubscription as exc:
            raise ProblemError(NOT_FOUND, str(exc)) from exc
        return Response(status_code=204)

    @router.post(
        "/{webhook_id}/rotate-secret",
        summary="Replace a webhook's signing secret, with an overlap",
        description=(
            "Answers the new secret (once). During the overlap every call carries two "
            "signatures, one by each secret, so the receiver can switch at any moment in it."
        ),
        response_model=WebhookWithSecret,
        responses=problem_responses(400, 404, 413, 415),
    )
    async def rotate_secret(
        request: Request,
        webhook_id: Annotated[str, Path(pattern=WEBHOOK_ID_PATTERN)],
        call: Annotated[IdempotentCall, Security(idempotent, scopes=["events:read"])],
        body: Annotated[SecretRotation | None, Body()] = None,
    ) -> Response:
        made: dict[str, str] = {}

        async def produce() -> Response:
            await own_webhook(request, call.caller, webhook_id)
            overlap = None if body is None else body.overlap_seconds
            try:
                rotated = await subscriptions_of(request).rotate_secret(
                    webhook_id, overlap=None if overlap is None else timedelta(seconds=overlap)
                )
            except UnknownSubscription as exc:
                raise ProblemError(NOT_FOUND, str(exc)) from exc
            made["secret"] = rotated.secret
            return JSONResponse(webhook_view(rotated.subscription).model_dump(mode="json"))

        response = await call.idempotency.run(produce)
        return await with_secret(request, response, made.get("secret"), replayed=not made)

    return router
