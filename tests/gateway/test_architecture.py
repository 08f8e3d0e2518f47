"""The gateway's shape: layers that stand alone, call downwards only, publish OpenAPI 3.1."""

from __future__ import annotations

import ast
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate

from gateway import Gateway
from gateway_infra.auth.scopes import Layer
from partner_api.app import create_partner_app
from partner_api.edge import EdgeServices
from process_api.app import create_process_app
from process_api.deliveries import DeliveryOperations
from process_api.exceptions.service import ExceptionQueue
from system_api.app import create_system_app

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("contracts", "gateway_infra", "system_api", "process_api", "partner_api")
# What each package may import of the others (partner -> process -> system; all may use infra
# and contracts; contracts uses nothing of ours).
ALLOWED = {
    "contracts": set(),
    "gateway_infra": {"contracts"},
    "system_api": {"contracts", "gateway_infra"},
    "process_api": {"contracts", "gateway_infra", "system_api"},
    "partner_api": {"contracts", "gateway_infra", "process_api"},
}


def _imported_packages(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in LAYERS and top != package:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", LAYERS)
def test_package_imports_only_the_layers_below_it(package: str) -> None:
    forbidden = {
        other: files
        for other, files in _imported_packages(package).items()
        if other not in ALLOWED[package]
    }

    assert forbidden == {}, f"{package} must not import {sorted(forbidden)}: {forbidden}"


def _layer_apps(gateway: Gateway) -> dict[str, Callable[[], FastAPI]]:
    settings = gateway.settings
    edge = EdgeServices(
        throttle=gateway.throttle, tiers=settings.throttle_tiers, idempotency=gateway.idempotency
    )
    return {
        "system": lambda: create_system_app(
            settings=settings,
            auth=gateway.layer_auth(Layer.SYSTEM),
            erp=gateway.embedded_erp,
            wms=gateway.embedded_wms,
        ),
        "process": lambda: create_process_app(
            settings=settings,
            auth=gateway.layer_auth(Layer.PROCESS),
            orders=gateway.orders,
            channels=gateway.channels,
            inventory=gateway.inventory,
            exceptions=ExceptionQueue(gateway.store),
            pricing=gateway.pricing,
            returns=gateway.returns,
            deliveries=DeliveryOperations(gateway.webhooks.admin),
        ),
        **{
            f"partner_{version}": partial(
                create_partner_app,
                settings=settings,
                version=version,
                auth=gateway.layer_auth(Layer.PARTNER),
                edge=edge,
                orders=gateway.orders,
                inventory=gateway.inventory,
                shipments=gateway.fulfilment,
                returns=gateway.returns,
                prices=gateway.pricing,
                events=gateway.events,
                webhooks=gateway.webhooks.subscriptions,
            )
            for version in ("v1", "v2")
        },
    }


@pytest.mark.parametrize("layer", ["system", "process", "partner_v1", "partner_v2"])
async def test_each_layer_app_runs_alone_with_no_other_layer_mounted(
    gateway: Gateway, layer: str
) -> None:
    app = _layer_apps(gateway)[layer]()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://layer.test") as client:
        document = (await client.get("/openapi.json")).json()
        missing = await client.get("/process/v1/orders/x")

    assert document["info"]["title"].startswith("Retail Sync Gateway")
    assert all(
        not path.startswith(("/system", "/process", "/partner")) for path in document["paths"]
    )
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "path",
    [
        "/system/openapi.json",
        "/process/openapi.json",
        "/partner/v1/openapi.json",
        "/partner/v2/openapi.json",
    ],
)
async def test_each_app_serves_a_valid_openapi_3_1_document(
    anonymous: httpx.AsyncClient, path: str
) -> None:
    response = await anonymous.get(path)

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    validate(document)


async def test_error_responses_are_documented_as_problem_json(
    anonymous: httpx.AsyncClient,
) -> None:
    document = (await anonymous.get("/process/openapi.json")).json()
    responses = document["paths"]["/v1/orders"]["post"]["responses"]

    assert set(responses["422"]["content"]) == {"application/problem+json"}
    assert set(responses["409"]["content"]) == {"application/problem+json"}
    assert "Problem" in document["components"]["schemas"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
