"""The partner documents against a real `retail-gateway serve` over HTTP, with the schemathesis
command line as CI runs it: every phase (examples, coverage, fuzzing, stateful), every default
check, a token from the token endpoint, and a JUnit report per document under reports/."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_ENVIRONMENT, GatewayProcess, provisioned_database
from tests.contract.conftest import HTTP_RUNS

# One server for both documents: the two tests stay on one pytest-xdist worker.
pytestmark = [pytest.mark.contract, pytest.mark.xdist_group("contract-http")]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
REPORTS = ROOT / "reports"
ROOMY = {"burst": 1_000_000, "sustained": 1_000_000}
SERVER_ENVIRONMENT = {
    # The run sends thousands of requests; throttling has tests of its own.
    "GATEWAY_THROTTLE_TIERS": json.dumps(dict.fromkeys(("standard", "premium", "internal"), ROOMY)),
    "GATEWAY_TOKEN_ENDPOINT_THROTTLE": json.dumps(ROOMY),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A migrated and demo-seeded gateway serving over HTTP (PostgreSQL when the suite has one),
    and a token of the demo webshop's partner client."""
    tmp_path = tmp_path_factory.mktemp("http-contract")
    kind = "postgres" if os.environ.get("TEST_DATABASE_URL") else "sqlite"
    with provisioned_database(kind, tmp_path) as database_url:
        environment = {
            **os.environ,
            **TEST_ENVIRONMENT,
            **SERVER_ENVIRONMENT,
            "DATABASE_URL": database_url,
        }
        # As the README's run command does: migrate (and create the signing keys), then seed.
        subprocess.run(
            [sys.executable, "-m", "gateway", "migrate"],
            env=environment,
            cwd=tmp_path,
            capture_output=True,
            check=True,
        )
        seeded = subprocess.run(
            [sys.executable, "-m", "gateway", "seed-demo", "--json"],
            env=environment,
            cwd=tmp_path,  # the demo credentials file stays out of the working tree
            capture_output=True,
            text=True,
            check=True,
        )
        clients = {c["name"]: c for c in json.loads(seeded.stdout)["clients"]}
        webshop = clients["demo-webshop"]
        with GatewayProcess(
            database_url,
            tmp_path / "gateway.log",
            GATEWAY_THROTTLE_TIERS=SERVER_ENVIRONMENT["GATEWAY_THROTTLE_TIERS"],
            GATEWAY_TOKEN_ENDPOINT_THROTTLE=SERVER_ENVIRONMENT["GATEWAY_TOKEN_ENDPOINT_THROTTLE"],
        ) as gateway:
            answer = httpx.post(
                f"{gateway.url}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(webshop["client_id"], webshop["client_secret"]),
            )
            assert answer.status_code == 200, answer.text
            yield gateway.url, answer.json()["access_token"]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_partner_api_keeps_its_document_over_http(
    served: tuple[str, str], version: str
) -> None:
    url, token = served
    report = REPORTS / f"schemathesis-partner-{version}.xml"
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(CONFIG),
            "--no-color",
            "run",
            f"{url}/partner/{version}/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--report",
            "junit",
            "--report-junit-path",
            str(report),
        ],
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.contract.hooks",
            "PYTHONPATH": str(ROOT),
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )

    tested = re.search(r"Tested: (\d+)", run.stdout)
    cases = re.search(r"Test cases:\s+(\d+) generated", run.stdout)
    HTTP_RUNS[f"partner_{version} over HTTP"] = (
        f"{tested.group(1) if tested else '?'} operations, "
        f"{cases.group(1) if cases else '?'} cases, report {report.relative_to(ROOT)}"
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert report.exists()
