"""Partner return endpoints, built once per API version from its representation.

(No `from __future__ import annotations` here: FastAPI reads the per-version models from the
annotations of functions defined inside the factory.)
"""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response, Security
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from contracts.common import Identifier
from contracts.returns import ReturnLine, ReturnStatus
from gateway_infra.openapi import operation_link, problem_responses
from gateway_infra.problems import NOT_FOUND, ProblemError
from partner_api.edge import IdempotentCall, Partner, PartnerRoute, ensure_own, idempotent, partner
from process_api.problems import RETURN_REFUSED
from process_api.returns import ReturnCreate, ReturnsPort, UnknownOrder

ACTOR_PREFIX = "partner:"
SCOPE = "returns:write"


def build_returns_router(representation: Any) -> APIRouter:
    """POST /returns and GET /returns/{return_id} in one version's representation."""
    request_model: type[BaseModel] = representation.request_model
    response_model: type[BaseModel] = representation.response_model
    router = APIRouter(
        route_class=PartnerRoute,
        prefix="/returns",
        tags=["returns"],
        responses=problem_responses(400, 401, 403, 422, 429),
    )

    def returns_of(request: Request) -> ReturnsPort:
        port: ReturnsPort = request.app.state.returns
        return port

    return_links = {
        "GetReturn": operation_link(
            "/returns/{return_id}",
            "get",
            "Read this return.",
            return_id="$response.body#/return_id",
        )
    }

    @router.post(
        "",
        summary="Request a return of an order of the calling channel",
        description=(
            "The return is decided at once by the channel's policy: every line must have "
            "shipped, the return window (counted from the line's last shipment) must be open, "
            "and no line may return more units than shipped minus those already returned. "
            "Authorized: 201 with the refund timing of each line. Refused: 409 "
            "`/problems/return-refused` listing every reason (`reasons`: line, code, detail). "
            "An unknown order, or another channel's, answers 404. The same `channel_return_id` "
            "again answers the return as it is (200); with other lines, 409 "
            "`/problems/return-conflict`."
        ),
        status_code=201,
        response_model=response_model,
        responses={
            200: {
                "model": response_model,
                "description": "Requested before; as it is now.",
                "links": return_links,
            },
            201: {"description": "Authorized by the channel's policy.", "links": return_links},
            **problem_responses(404, 409, 413, 415),
        },
    )
    async def request_return(
        request: Request,
        body: request_model,  # type: ignore[valid-type]
        call: Annotated[IdempotentCall, Security(idempotent, scopes=[SCOPE])],
    ) -> Response:
        async def produce() -> Response:
            asked: Any = body
            create = ReturnCreate(
                channel=call.caller.channel,
                order_id=asked.order_id,
                channel_return_id=asked.channel_return_id,
                lines=[
                    ReturnLine(
                        line_id=line.line_id,
                        sku=line.sku,
                        quantity=line.quantity,
                        reason=line.reason,
                    )
                    for line in asked.lines
                ],
            )
            try:
                outcome = await returns_of(request).create(
                    create, actor=ACTOR_PREFIX + call.caller.client_id
                )
            except UnknownOrder as exc:
                raise ProblemError(NOT_FOUND, f"no order {create.order_id!r}") from exc
            ret = outcome.ret
            if ret.status is ReturnStatus.REFUSED:
                raise ProblemError(
                    RETURN_REFUSED,
                    f"{len(ret.refusals)} reason(s): " + "; ".join(r.detail for r in ret.refusals),
                    return_id=ret.return_id,
                    reasons=[r.model_dump(mode="json") for r in ret.refusals],
                )
            location = f"{str(request.url).split('?')[0].rstrip('/')}/{ret.return_id}"
            return JSONResponse(
                representation.from_return(ret).model_dump(mode="json"),
                status_code=201 if outcome.created else 200,
                headers={"Location": location},
            )

        return await call.idempotency.run(produce)

    @router.get(
        "/{return_id}",
        summary="One return of the calling channel",
        description=(
            "The return with its lines, refusal reasons, refunds (ours: pay them to the customer "
            "once posted; the channel's own) and status. Another channel's return answers 404, "
            "as an unknown one does."
        ),
        response_model=response_model,
        responses=problem_responses(404),
    )
    async def get_return(
        request: Request,
        return_id: Annotated[Identifier, Path()],
        caller: Annotated[Partner, Security(partner, scopes=[SCOPE])],
    ) -> Any:
        ret = await returns_of(request).get(return_id)
        if ret is None:
            raise ProblemError(NOT_FOUND, f"no return {return_id!r}")
        ensure_own(caller, ret.channel, "return", return_id)
        return representation.from_return(ret)

    return router
