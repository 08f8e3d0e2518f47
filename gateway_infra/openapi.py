"""OpenAPI helpers: document problem+json error responses the same way in every app."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from contracts import PROBLEM_MEDIA_TYPE, Problem

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` entries for the given statuses, each an application/problem+json."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF}},
        }
        for status in statuses
    }


def operation_link(path: str, method: str, description: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link to the operation at `path` (as the app documents it) and `method`, its
    parameters taken from the response, e.g. order_id="$response.body#/order_id"."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    return {
        "operationRef": f"#/paths/{pointer}/{method.lower()}",
        "parameters": parameters,
        "description": description,
    }


def _without_null(parameter: dict[str, Any]) -> None:
    """A header is sent or left out, never null: an optional header's schema (FastAPI documents
    `str | None` as anyOf string/null) keeps its other alternative only."""
    schema = parameter.get("schema", {})
    branches = schema.get("anyOf")
    if not branches or {"type": "null"} not in branches:
        return
    rest = [branch for branch in branches if branch != {"type": "null"}]
    del schema["anyOf"]
    if len(rest) == 1:
        schema.update({**rest[0], **schema})
    else:
        schema["anyOf"] = rest


def install_openapi(
    app: FastAPI,
    *,
    token_url: str | None = None,
    required_headers: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Generate the app's OpenAPI 3.1 document once, with the Problem schema and problem 422s."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
            servers=app.servers,
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in problem_schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas["Problem"] = problem_schema
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        for path_item in document.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.get("responses", {})
                if "422" in responses:
                    responses["422"] = {
                        "description": "The request is not valid",
                        "content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF}},
                    }
                # What the shared edge answers on its own, documented where it can happen.
                edge_statuses = [504]
                if "requestBody" in operation:
                    edge_statuses += [400, 413, 415]
                for status, entry in problem_responses(*edge_statuses).items():
                    responses.setdefault(str(status), entry)
        required_headers_ = required_headers or {}
        for path_item in document.get("paths", {}).values():
            for operation in path_item.values():
                for parameter in operation.get("parameters", []):
                    if parameter.get("in") == "header":
                        _without_null(parameter)
                    # Checked by the app itself (400 problem, not 422), but required all the same.
                    if parameter.get("in") == "header" and parameter["name"] in required_headers_:
                        parameter["required"] = True
                        parameter["schema"] = dict(required_headers_[parameter["name"]])
        if token_url is not None:
            for scheme in document["components"].get("securitySchemes", {}).values():
                for flow in scheme.get("flows", {}).values():
                    if "tokenUrl" in flow:
                        flow["tokenUrl"] = token_url
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
