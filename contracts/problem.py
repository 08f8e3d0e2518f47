"""RFC 9457 problem details, the body of every error response."""

from typing import Literal

from pydantic import ConfigDict, Field

from contracts.common import ContractModel

__all__ = ["PROBLEM_MEDIA_TYPE", "FieldError", "Problem"]

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(ContractModel):
    """One invalid input member: a body member (pointer) or a parameter (parameter and in)."""

    detail: str = Field(min_length=1, description="What is wrong with it.")
    pointer: str | None = Field(
        default=None,
        pattern=r"^#?(/([^~/]|~[01])*)*$",
        description="JSON Pointer (RFC 6901) to the offending body member, e.g. #/lines/0/sku.",
    )
    parameter: str | None = Field(default=None, description="Name of the offending parameter.")
    in_: Literal["query", "path", "header", "cookie"] | None = Field(
        default=None, alias="in", description="Where the offending parameter is."
    )


class Problem(ContractModel):
    """Problem details (RFC 9457); extension members are allowed."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str = Field(default="about:blank", description="URI identifying the problem type.")
    title: str = Field(description="Short, human-readable summary of the problem type.")
    status: int = Field(ge=400, le=599, description="HTTP status code of this occurrence.")
    detail: str | None = Field(
        default=None, description="Human-readable explanation of this occurrence."
    )
    instance: str | None = Field(
        default=None, description="URI reference identifying this occurrence."
    )
    code: str = Field(
        min_length=1, max_length=64, description="Stable machine-readable error code."
    )
    correlation_id: str | None = Field(
        default=None, description="Correlation id to quote when reporting the problem."
    )
    errors: list[FieldError] | None = Field(
        default=None, description="Per-field validation errors, for 400/422 responses."
    )
