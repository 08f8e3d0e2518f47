"""The OpenAPI documents under contract test, as the gateway serves them: each mounted app's own
document with its mount as the server. Read from an app built without a database (nothing is
queried to describe the API), so pytest can make one test per operation when it collects."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import schemathesis
from fastapi import FastAPI
from starlette.routing import Mount

from gateway import build_app, build_gateway
from gateway_infra.clock import ManualClock
from gateway_infra.settings import Settings
from tests.conftest import make_settings

CONFIG_PATH = Path(__file__).with_name("schemathesis.toml")
MOUNTS = {
    "system": "/system",
    "process": "/process",
    "partner_v1": "/partner/v1",
    "partner_v2": "/partner/v2",
}
PARTNER_DOCUMENTS = ("partner_v1", "partner_v2")
ROOMY = {"burst": 1_000_000, "sustained": 1_000_000}


def contract_settings(database_url: str) -> Settings:
    """The test settings, with throttling out of the way: a run sends thousands of requests and
    throttling has tests of its own."""
    return make_settings(
        database_url, throttle_tiers=dict.fromkeys(("standard", "premium", "internal"), ROOMY)
    )


@cache
def served_documents() -> dict[str, dict[str, Any]]:
    """Each app's document with the server prefix the gateway mounts it under."""
    gateway = build_gateway(contract_settings("sqlite://"), clock=ManualClock())
    try:
        app = build_app(gateway, run_background=False)
        documents: dict[str, dict[str, Any]] = {}
        for route in app.routes:
            if isinstance(route, Mount) and isinstance(route.app, FastAPI):
                for name, prefix in MOUNTS.items():
                    if route.path == prefix:
                        document = copy.deepcopy(route.app.openapi())
                        document["servers"] = [{"url": prefix}]
                        documents[name] = document
        return documents
    finally:
        gateway.database.dispose()


def load_schema(name: str) -> Any:
    """A schemathesis schema of one document (system, process, partner_v1, partner_v2) with the
    contract tests' configuration."""
    config = schemathesis.Config.from_path(CONFIG_PATH)
    # A copy: schemathesis adds the links it infers to the document it is given.
    document = copy.deepcopy(served_documents()[name])
    return schemathesis.openapi.from_dict(document, config=config)
