"""The breaking-change rules of `retail-gateway contracts check`: each rule on a minimal before and
after document must fail, with a readable line saying where; additive changes must pass."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from gateway_infra.openapi_diff import RULES, BreakingChange, breaking_changes, format_changes

TODAY = date(2026, 11, 27)
JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


RELEASED: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Orders", "version": "1.0.0"},
    "paths": {
        "/orders": {
            "get": {
                "security": [{"oauth2": ["orders:read"]}],
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["open", "closed"]},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "A page of orders.",
                        "headers": {"RateLimit": {"schema": {"type": "string"}}},
                        "content": _json(_ref("OrderPage")),
                    }
                },
            },
            "post": {
                "security": [{"oauth2": ["orders:write"]}],
                "requestBody": {"required": True, "content": _json(_ref("OrderIn"))},
                "responses": {
                    "201": {"description": "Accepted.", "content": _json(_ref("Order"))},
                    "409": {"description": "Rejected."},
                },
            },
        },
        "/orders/{order_id}": {
            "parameters": [
                {"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "get": {
                "security": [{"oauth2": ["orders:read"]}],
                "responses": {
                    "200": {"description": "The order.", "content": _json(_ref("Order"))}
                },
            },
            "delete": {
                "deprecated": True,
                "x-sunset": "2027-01-31",
                "security": [{"oauth2": ["orders:write"]}],
                "responses": {"204": {"description": "Deleted."}},
            },
        },
        "/orders/{order_id}/cancel": {
            "post": {
                "parameters": [
                    {
                        "name": "order_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "security": [{"oauth2": ["orders:write"]}],
                "requestBody": {"required": False, "content": _json(_ref("CancelIn"))},
                "responses": {
                    "200": {"description": "Cancelled.", "content": _json(_ref("Order"))}
                },
            }
        },
        "/status": {"get": {"responses": {"200": {"description": "Up."}}}},
    },
    "components": {
        "schemas": {
            "OrderIn": {
                "type": "object",
                "properties": {
                    "channel_order_id": {"type": "string", "minLength": 1, "maxLength": 64},
                    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                    "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    "lines": {
                        "type": "array",
                        "items": _ref("LineIn"),
                        "minItems": 1,
                        "maxItems": 50,
                    },
                    "payment": {"oneOf": [_ref("CardPayment"), _ref("InvoicePayment")]},
                },
                "required": ["channel_order_id", "lines"],
            },
            "LineIn": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string"},
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 1000},
                    "kind": _ref("LineKind"),
                    "weight": {"type": "number"},
                },
                "required": ["sku", "quantity"],
            },
            "LineKind": {"type": "string", "enum": ["goods", "service"]},
            "CardPayment": {
                "type": "object",
                "properties": {"card_token": {"type": "string"}},
                "required": ["card_token"],
            },
            "InvoicePayment": {
                "type": "object",
                "properties": {"invoice_to": {"type": "string"}},
                "required": ["invoice_to"],
            },
            "CancelIn": {"type": "object", "properties": {"reason": {"type": "string"}}},
            "Order": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "status": _ref("OrderStatus"),
                    "total_minor": {"type": "integer"},
                },
                "required": ["id", "status"],
            },
            "OrderStatus": {"type": "string", "enum": ["accepted", "rejected"]},
            "OrderPage": {
                "type": "object",
                "properties": {"items": {"type": "array", "items": _ref("Order")}},
                "required": ["items"],
            },
        },
        "securitySchemes": {
            "oauth2": {
                "type": "oauth2",
                "flows": {
                    "clientCredentials": {
                        "tokenUrl": "https://gateway.example/oauth/token",
                        "scopes": {"orders:read": "Read.", "orders:write": "Write."},
                    }
                },
            }
        },
    },
}

Change = Callable[[dict[str, Any]], object]


def _after(change: Change) -> dict[str, Any]:
    document = copy.deepcopy(RELEASED)
    change(document)
    return document


def _schemas(document: dict[str, Any]) -> dict[str, Any]:
    schemas: dict[str, Any] = document["components"]["schemas"]
    return schemas


def _props(document: dict[str, Any], schema: str) -> dict[str, Any]:
    properties: dict[str, Any] = _schemas(document)[schema]["properties"]
    return properties


def _operation(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    operation: dict[str, Any] = document["paths"][path][method]
    return operation


def _list_parameter(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(
        p for p in _operation(document, "/orders", "get")["parameters"] if p["name"] == name
    )


def _set(target: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    target[key] = value
    return target


def _rename(mapping: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    mapping[new] = mapping.pop(old)
    return mapping


# (rule, what changed, where the report must point, the change)
BREAKING: list[tuple[str, str, str, Change]] = [
    (
        "removed-operation",
        "operation removed",
        "POST /orders",
        lambda d: d["paths"]["/orders"].pop("post"),
    ),
    (
        "removed-operation",
        "deprecated operation removed before its x-sunset",
        "DELETE /orders/{order_id}",
        lambda d: d["paths"]["/orders/{order_id}"].pop("delete"),
    ),
    (
        "removed-parameter",
        "query parameter removed",
        "GET /orders parameter `status` (query)",
        lambda d: _operation(d, "/orders", "get")["parameters"].pop(0),
    ),
    (
        "removed-parameter",
        "query parameter renamed",
        "GET /orders parameter `status` (query)",
        lambda d: _set(_list_parameter(d, "status"), "name", "state"),
    ),
    (
        "removed-field",
        "request field removed",
        "POST /orders request body (application/json) field `note`",
        lambda d: _props(d, "OrderIn").pop("note"),
    ),
    (
        "removed-field",
        "nested request field renamed",
        "POST /orders request body (application/json) field `lines[].weight`",
        lambda d: _rename(_props(d, "LineIn"), "weight", "weight_kg"),
    ),
    (
        "removed-field",
        "response field removed",
        "GET /orders response 200 (application/json) field `items[].total_minor`",
        lambda d: _props(d, "Order").pop("total_minor"),
    ),
    (
        "removed-field",
        "request body removed",
        "POST /orders request body",
        lambda d: _operation(d, "/orders", "post").pop("requestBody"),
    ),
    (
        "removed-field",
        "accepted alternative of a union removed",
        "POST /orders request body (application/json) field `payment`",
        lambda d: _set(_props(d, "OrderIn"), "payment", {"oneOf": [_ref("CardPayment")]}),
    ),
    (
        "new-required-parameter",
        "new required header",
        "GET /orders parameter `X-Channel` (header)",
        lambda d: _operation(d, "/orders", "get")["parameters"].append(
            {"name": "X-Channel", "in": "header", "required": True, "schema": {"type": "string"}}
        ),
    ),
    (
        "new-required-field",
        "new required request field",
        "POST /orders request body (application/json) field `channel`",
        lambda d: (
            _props(d, "OrderIn").update(channel={"type": "string"}),
            _schemas(d)["OrderIn"]["required"].append("channel"),
        ),
    ),
    (
        "new-required-field",
        "new required request body",
        "GET /orders/{order_id} request body",
        lambda d: _operation(d, "/orders/{order_id}", "get").update(
            requestBody={"required": True, "content": _json({"type": "object"})}
        ),
    ),
    (
        "optional-made-required",
        "optional parameter made required",
        "GET /orders parameter `limit` (query)",
        lambda d: _set(_list_parameter(d, "limit"), "required", True),
    ),
    (
        "optional-made-required",
        "optional request field made required",
        "POST /orders request body (application/json) field `currency`",
        lambda d: _schemas(d)["OrderIn"]["required"].append("currency"),
    ),
    (
        "optional-made-required",
        "optional request body made required",
        "POST /orders/{order_id}/cancel request body",
        lambda d: _set(
            _operation(d, "/orders/{order_id}/cancel", "post")["requestBody"], "required", True
        ),
    ),
    (
        "response-field-made-optional",
        "response field no longer always given",
        "GET /orders response 200 (application/json) field `items[].status`",
        lambda d: _schemas(d)["Order"]["required"].remove("status"),
    ),
    (
        "type-changed",
        "request field type changed",
        "POST /orders request body (application/json) field `lines[].quantity`",
        lambda d: _set(_props(d, "LineIn"), "quantity", {"type": "string"}),
    ),
    (
        "type-changed",
        "request field no longer accepts null",
        "POST /orders request body (application/json) field `note`",
        lambda d: _set(_props(d, "OrderIn"), "note", {"type": "string"}),
    ),
    (
        "type-changed",
        "response field type changed",
        "GET /orders response 200 (application/json) field `items[].total_minor`",
        lambda d: _set(_props(d, "Order"), "total_minor", {"type": "string"}),
    ),
    (
        "type-changed",
        "response field may now be null",
        "GET /orders response 200 (application/json) field `items[].id`",
        lambda d: _set(_props(d, "Order"), "id", {"anyOf": [{"type": "string"}, {"type": "null"}]}),
    ),
    (
        "removed-enum-value",
        "enum value removed from a request field",
        "POST /orders request body (application/json) field `lines[].kind`",
        lambda d: _schemas(d)["LineKind"]["enum"].remove("service"),
    ),
    (
        "removed-enum-value",
        "enum value removed from a response field",
        "GET /orders response 200 (application/json) field `items[].status`",
        lambda d: _schemas(d)["OrderStatus"]["enum"].remove("rejected"),
    ),
    (
        "removed-enum-value",
        "enum value removed from a parameter",
        "GET /orders parameter `status` (query)",
        lambda d: _list_parameter(d, "status")["schema"]["enum"].remove("closed"),
    ),
    (
        "narrowed-constraint",
        "maxLength lowered",
        "field `channel_order_id`",
        lambda d: _set(_props(d, "OrderIn")["channel_order_id"], "maxLength", 32),
    ),
    (
        "narrowed-constraint",
        "minLength raised",
        "field `channel_order_id`",
        lambda d: _set(_props(d, "OrderIn")["channel_order_id"], "minLength", 3),
    ),
    (
        "narrowed-constraint",
        "maximum lowered",
        "field `lines[].quantity`",
        lambda d: _set(_props(d, "LineIn")["quantity"], "maximum", 100),
    ),
    (
        "narrowed-constraint",
        "minimum raised",
        "field `lines[].quantity`",
        lambda d: _set(_props(d, "LineIn")["quantity"], "minimum", 2),
    ),
    (
        "narrowed-constraint",
        "maxItems lowered",
        "field `lines`",
        lambda d: _set(_props(d, "OrderIn")["lines"], "maxItems", 10),
    ),
    (
        "narrowed-constraint",
        "minItems raised",
        "field `lines`",
        lambda d: _set(_props(d, "OrderIn")["lines"], "minItems", 2),
    ),
    (
        "narrowed-constraint",
        "pattern changed",
        "field `currency`",
        lambda d: _set(_props(d, "OrderIn")["currency"], "pattern", "^EUR$"),
    ),
    (
        "narrowed-constraint",
        "pattern added",
        "field `lines[].sku`",
        lambda d: _set(_props(d, "LineIn")["sku"], "pattern", "^[A-Z0-9-]+$"),
    ),
    (
        "narrowed-constraint",
        "maxLength added",
        "field `lines[].sku`",
        lambda d: _set(_props(d, "LineIn")["sku"], "maxLength", 40),
    ),
    (
        "narrowed-constraint",
        "free string limited to an enum",
        "field `lines[].sku`",
        lambda d: _set(_props(d, "LineIn")["sku"], "enum", ["MUG"]),
    ),
    (
        "narrowed-constraint",
        "parameter maximum lowered",
        "GET /orders parameter `limit` (query)",
        lambda d: _set(_list_parameter(d, "limit")["schema"], "maximum", 50),
    ),
    (
        "narrowed-constraint",
        "other properties no longer accepted",
        "POST /orders request body (application/json)",
        lambda d: _set(_schemas(d)["OrderIn"], "additionalProperties", False),
    ),
    (
        "changed-security",
        "scope of an operation changed",
        "GET /orders",
        lambda d: _set(_operation(d, "/orders", "get"), "security", [{"oauth2": ["orders:admin"]}]),
    ),
    (
        "changed-security",
        "public operation now needs a token",
        "GET /status",
        lambda d: _set(_operation(d, "/status", "get"), "security", [{"oauth2": []}]),
    ),
    (
        "changed-security",
        "token URL of the security scheme changed",
        "security scheme `oauth2`",
        lambda d: _set(
            d["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"],
            "tokenUrl",
            "https://elsewhere.example/token",
        ),
    ),
    (
        "changed-security",
        "scope removed from the security scheme",
        "security scheme `oauth2`",
        lambda d: d["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"][
            "scopes"
        ].pop("orders:read"),
    ),
    (
        "removed-response",
        "success response removed",
        "POST /orders response 201",
        lambda d: _operation(d, "/orders", "post")["responses"].pop("201"),
    ),
    (
        "removed-media-type",
        "request media type replaced",
        "POST /orders request body (application/json)",
        lambda d: _set(
            _operation(d, "/orders", "post")["requestBody"],
            "content",
            {"application/xml": {"schema": _ref("OrderIn")}},
        ),
    ),
    (
        "removed-response-header",
        "documented response header removed",
        "GET /orders response 200 header `RateLimit`",
        lambda d: _operation(d, "/orders", "get")["responses"]["200"].pop("headers"),
    ),
]


@pytest.mark.parametrize(
    ("rule", "where", "change"),
    [
        pytest.param(rule, where, change, id=f"{rule}: {what}")
        for rule, what, where, change in BREAKING
    ],
)
def test_a_breaking_change_fails_with_its_rule_and_where_it_is(
    rule: str, where: str, change: Change
) -> None:
    changes = breaking_changes(RELEASED, _after(change), today=TODAY)

    assert changes, "a breaking change passed"
    assert any(c.rule == rule and where in c.where for c in changes), "\n".join(map(str, changes))
    assert all(c.rule in RULES for c in changes)


def test_every_rule_has_a_failing_fixture() -> None:
    assert {rule for rule, *_ in BREAKING} == set(RULES)


ADDITIVE: list[tuple[str, Change]] = [
    ("nothing changed", lambda d: None),
    (
        "new operation",
        lambda d: d["paths"].update(
            {"/orders/{order_id}/notes": {"get": {"responses": {"200": {"description": "Notes."}}}}}
        ),
    ),
    (
        "new optional parameter",
        lambda d: _operation(d, "/orders", "get")["parameters"].append(
            {"name": "channel", "in": "query", "required": False, "schema": {"type": "string"}}
        ),
    ),
    ("new optional request field", lambda d: _props(d, "OrderIn").update(gift={"type": "boolean"})),
    (
        "new response field, always given",
        lambda d: (
            _props(d, "Order").update(created_at={"type": "string", "format": "date-time"}),
            _schemas(d)["Order"]["required"].append("created_at"),
        ),
    ),
    (
        "new response header",
        lambda d: _operation(d, "/orders", "get")["responses"]["200"]["headers"].update(
            {"RateLimit-Policy": {"schema": {"type": "string"}}}
        ),
    ),
    (
        "new response status",
        lambda d: _operation(d, "/orders", "post")["responses"].update(
            {"202": {"description": "Validation deferred.", "content": _json(_ref("Order"))}}
        ),
    ),
    ("new enum value in a response", lambda d: _schemas(d)["OrderStatus"]["enum"].append("held")),
    ("new enum value in a request", lambda d: _schemas(d)["LineKind"]["enum"].append("gift_card")),
    ("request field made optional", lambda d: _schemas(d)["OrderIn"]["required"].remove("lines")),
    (
        "request field accepts null too",
        lambda d: _set(
            _props(d, "OrderIn"),
            "currency",
            {"anyOf": [{"type": "string", "pattern": "^[A-Z]{3}$"}, {"type": "null"}]},
        ),
    ),
    (
        "request integer widened to number",
        lambda d: _set(
            _props(d, "LineIn"), "quantity", {"type": "number", "minimum": 1, "maximum": 1000}
        ),
    ),
    (
        "widened constraints",
        lambda d: (
            _set(_props(d, "OrderIn")["channel_order_id"], "maxLength", 128),
            _set(_props(d, "OrderIn")["channel_order_id"], "minLength", 0),
            _set(_props(d, "OrderIn")["lines"], "maxItems", 500),
            _props(d, "OrderIn")["currency"].pop("pattern"),
            _set(_props(d, "LineIn")["quantity"], "maximum", 10_000),
            _set(_list_parameter(d, "limit")["schema"], "minimum", 0),
        ),
    ),
    (
        "new accepted alternative of a union",
        lambda d: _props(d, "OrderIn")["payment"]["oneOf"].append({"type": "string"}),
    ),
    (
        "path parameter renamed (same URL)",
        lambda d: (
            _rename(d["paths"], "/orders/{order_id}", "/orders/{id}"),
            _set(d["paths"]["/orders/{id}"]["parameters"][0], "name", "id"),
        ),
    ),
    (
        "schema component renamed",
        lambda d: (
            _rename(_schemas(d), "OrderIn", "OrderCreate"),
            _set(
                _operation(d, "/orders", "post")["requestBody"]["content"][JSON],
                "schema",
                _ref("OrderCreate"),
            ),
        ),
    ),
    (
        "another way to authenticate added",
        lambda d: _operation(d, "/orders", "get")["security"].append({"apiKey": []}),
    ),
    ("error response dropped", lambda d: _operation(d, "/orders", "post")["responses"].pop("409")),
]


@pytest.mark.parametrize(("change"), [pytest.param(c, id=what) for what, c in ADDITIVE])
def test_an_additive_change_passes(change: Change) -> None:
    changes = breaking_changes(RELEASED, _after(change), today=TODAY)

    assert changes == [], "\n".join(map(str, changes))


def _without_delete(document: dict[str, Any]) -> None:
    document["paths"]["/orders/{order_id}"].pop("delete")


def test_a_deprecated_operation_may_go_on_its_sunset_day() -> None:
    after = _after(_without_delete)

    before_sunset = breaking_changes(RELEASED, after, today=date(2027, 1, 30))
    on_sunset = breaking_changes(RELEASED, after, today=date(2027, 1, 31))

    assert [(c.rule, c.detail) for c in before_sunset] == [
        ("removed-operation", "operation removed before its sunset (2027-01-31)")
    ]
    assert on_sunset == []


def test_a_deprecated_operation_without_a_sunset_date_may_not_go() -> None:
    released = copy.deepcopy(RELEASED)
    released["paths"]["/orders/{order_id}"]["delete"].pop("x-sunset")

    changes = breaking_changes(released, _after(_without_delete), today=date(2099, 1, 1))

    assert [c.rule for c in changes] == ["removed-operation"]
    assert "no sunset date" in changes[0].detail


def test_a_deprecated_version_goes_as_a_whole_after_its_documented_sunset() -> None:
    sunset = date(2027, 6, 30)

    before = breaking_changes(RELEASED, None, today=date(2027, 6, 29), document_sunset=sunset)
    after = breaking_changes(RELEASED, None, today=sunset, document_sunset=sunset)

    assert {c.where for c in before} >= {"GET /orders", "POST /orders", "GET /status"}
    assert {c.rule for c in before} == {"removed-operation"}
    assert after == []


def test_a_document_gone_without_a_sunset_lists_every_operation() -> None:
    changes = breaking_changes(RELEASED, None, today=TODAY)

    assert len(changes) == 6
    assert {c.rule for c in changes} == {"removed-operation"}


def test_the_report_lists_every_breaking_change_with_where_it_is() -> None:
    def several(document: dict[str, Any]) -> None:
        _props(document, "OrderIn").pop("note")
        _set(_props(document, "LineIn")["quantity"], "maximum", 10)
        document["paths"]["/orders"].pop("get")

    changes = breaking_changes(RELEASED, _after(several), today=TODAY)
    report = format_changes("partner-v2", changes)

    assert report.splitlines() == [
        "partner-v2: 3 breaking changes",
        "  - [removed-operation] GET /orders: operation removed (deprecate it with a sunset date"
        " first)",
        "  - [removed-field] POST /orders request body (application/json) field `note`: removed"
        " or renamed",
        "  - [narrowed-constraint] POST /orders request body (application/json) field"
        " `lines[].quantity`: maximum lowered from 1000 to 10",
    ]
    assert str(changes[0]) == report.splitlines()[1][4:]
    assert format_changes("system", []) == "system: no breaking change"


def test_recursive_schemas_are_compared_once() -> None:
    released = copy.deepcopy(RELEASED)
    node = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": _ref("Node")},
        },
    }
    _schemas(released)["Node"] = node
    _props(released, "Order")["tree"] = _ref("Node")
    current = copy.deepcopy(released)
    _props(current, "Node")["name"] = {"type": "integer"}

    changes = breaking_changes(released, current, today=TODAY)

    assert [c.rule for c in changes] == ["type-changed"]
    assert isinstance(changes[0], BreakingChange)
