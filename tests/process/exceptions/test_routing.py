"""Routing rules from configuration: first match wins, a default otherwise, checked at start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from contracts import Money
from contracts.exceptions import Severity
from gateway import build_gateway
from process_api.exceptions import ExceptionRoutingConfigError, load_routing_config, policy_for
from tests.conftest import free_port, make_settings
from tests.process.exceptions.support import ROUTING

EUR = "EUR"


def money(amount: str, currency: str = EUR) -> Money:
    return Money(amount=Decimal(amount), currency=currency)


def test_the_first_matching_rule_decides_owner_severity_and_sla() -> None:
    routing = load_routing_config(ROUTING)

    big = routing.route(
        workflow="order_capture", channel="webshop", code="step_failed", money_at_risk=money("1500")
    )
    small = routing.route(
        workflow="order_capture",
        channel="marketplace",
        code="step_failed",
        money_at_risk=money("5"),
    )

    assert (big.owner_team, big.severity, big.sla, big.rule) == (
        "key-accounts",
        Severity.CRITICAL,
        timedelta(minutes=15),
        "big orders",
    )
    # The marketplace rule would match too, but the order rule comes first.
    assert (small.owner_team, small.severity, small.sla) == (
        "order-desk",
        Severity.HIGH,
        timedelta(hours=1),
    )


def test_money_at_risk_matches_only_in_the_rules_currency_and_from_its_amount_up() -> None:
    routing = load_routing_config(ROUTING)

    def team(at_risk: Money | None) -> str:
        return routing.route(
            workflow="order_capture", channel=None, code="x", money_at_risk=at_risk
        ).owner_team

    assert team(money("1000.00")) == "key-accounts"
    assert team(money("999.99")) == "order-desk"
    assert team(money("5000", "USD")) == "order-desk"
    assert team(None) == "order-desk"


def test_a_rule_without_severity_or_sla_keeps_the_raisers_severity_and_the_workflows_sla() -> None:
    routing = load_routing_config(ROUTING)

    route = routing.route(workflow="inventory_sync", channel="marketplace", code="stock_shortfall")

    assert route.owner_team == "marketplace-team"
    assert route.severity is None
    assert route.sla == policy_for("inventory_sync").sla


def test_an_exception_no_rule_matches_goes_to_operations_with_its_workflows_sla() -> None:
    route = load_routing_config(ROUTING).route(workflow="returns", channel="webshop", code="x")

    assert (route.owner_team, route.severity, route.sla, route.rule) == (
        "operations",
        None,
        policy_for("returns").sla,
        "default",
    )


def test_critical_workflows_retry_longer_and_get_shorter_slas_than_reference_data() -> None:
    reference = policy_for("reference_data")
    for workflow in ("order_capture", "inventory_sync", "shipment_confirmation", "returns"):
        critical = policy_for(workflow)
        assert critical.retry.max_attempts > reference.retry.max_attempts
        assert critical.sla < reference.sla
        assert critical.severity is Severity.HIGH


def test_a_rule_naming_no_condition_replaces_the_default() -> None:
    routing = load_routing_config(
        json.dumps([{"workflow": "returns", "owner_team": "returns-desk"}, {"owner_team": "noc"}])
    )

    assert routing.route(workflow="returns", channel=None, code="x").owner_team == "returns-desk"
    assert routing.route(workflow="pricing", channel=None, code="x").owner_team == "noc"


def test_rules_are_read_from_a_file_too(tmp_path: Path) -> None:
    path = tmp_path / "routing.json"
    path.write_text(ROUTING)

    assert load_routing_config(str(path)).rules == load_routing_config(ROUTING).rules


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("[{", "not valid JSON"),
        ('{"owner_team": "x"}', "expected a JSON array"),
        ('[{"workflow": "order_capture"}]', "rule #1: owner_team: Field required"),
        ('[{"owner_team": "x", "severity": "urgent"}]', "rule #1: severity"),
        ('[{"owner_team": "x", "sla": "PT0S"}]', "sla must be a positive duration"),
        ('[{"owner_team": "x", "team": "y"}]', "rule #1: team: Extra inputs are not permitted"),
        (
            '[{"owner_team": "x", "min_money_at_risk": {"amount": 5, "currency": "EUR"}}]',
            "rule #1: min_money_at_risk",
        ),
        (
            '[{"workflow": "returns", "owner_team": "a"},'
            ' {"workflow": "returns", "code": "refund_failed", "owner_team": "b"}]',
            "rule #2 can never match: rule #1 matches every exception it would",
        ),
        (
            '[{"owner_team": "a", "min_money_at_risk": {"amount": "100", "currency": "EUR"}},'
            ' {"owner_team": "b", "min_money_at_risk": {"amount": "500", "currency": "EUR"}}]',
            "rule #2 can never match",
        ),
        ("/nonexistent/routing.json", "cannot read the file"),
    ],
)
def test_a_mistake_in_the_rules_is_named(config: str, expected: str) -> None:
    with pytest.raises(ExceptionRoutingConfigError) as raised:
        load_routing_config(config)

    assert expected in str(raised.value)


def test_a_bigger_amount_may_follow_a_smaller_one_only_in_the_other_order() -> None:
    routing = load_routing_config(
        json.dumps(
            [
                {"owner_team": "a", "min_money_at_risk": {"amount": "500", "currency": "EUR"}},
                {"owner_team": "b", "min_money_at_risk": {"amount": "100", "currency": "EUR"}},
                {"owner_team": "c", "min_money_at_risk": {"amount": "100", "currency": "USD"}},
            ]
        )
    )

    assert [rule.owner_team for rule in routing.rules] == ["a", "b", "c"]


def test_bad_rules_stop_the_gateway_from_being_built(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'gw.db'}", exception_routing='[{"severity": "high"}]'
    )

    with pytest.raises(ExceptionRoutingConfigError, match="owner_team"):
        build_gateway(settings)


def test_serve_refuses_bad_rules_with_a_clear_message(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_EXCEPTION_ROUTING": '[{"owner_team": "ops", "sla": "soon"}]',
    }

    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.startswith("error: GATEWAY_EXCEPTION_ROUTING: exception routing from")
    assert "rule #1: sla" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_rules_in_the_exceptions_guide_are_a_valid_configuration() -> None:
    guide = (Path(__file__).resolve().parents[3] / "docs" / "exceptions.md").read_text()
    block = guide.split("```json\n", 1)[1].split("```", 1)[0]

    assert len(load_routing_config(block).rules) >= 3
