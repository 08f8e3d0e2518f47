"""Routing rules: which team owns an exception, how severe it is and how soon it must be handled.

Rules come from configuration (GATEWAY_EXCEPTION_ROUTING, a JSON array, inline or in a file) and
are checked whole at start-up. Each rule matches on workflow, channel, error code and a minimum
money at risk (every condition it names must hold); the first rule that matches wins. When none
does, the default applies: the owner team "operations", the severity the raiser chose, the SLA of
the workflow (process_api.exceptions.policies). A rule naming no condition at all replaces that
default.

The gateway installs its rules for its database at start-up; open_exception finds them from the
connection of the unit of work, so every workflow that raises exceptions is routed without passing
the rules around.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from sqlalchemy import Connection, Engine

from contracts import Money
from contracts.common import ChannelCode
from contracts.exceptions import Severity
from gateway_infra.unit_of_work import Store
from process_api.exceptions.policies import policy_for

DEFAULT_OWNER_TEAM = "operations"


class RoutingRule(BaseModel):
    """One rule: conditions (all optional) and what an exception meeting them gets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = Field(default=None, max_length=100, description="For people and logs.")
    workflow: str | None = Field(default=None, max_length=40, pattern=r"^[a-z_]+$")
    channel: ChannelCode | None = None
    code: str | None = Field(default=None, max_length=64, pattern=r"^[a-z0-9_.-]+$")
    min_money_at_risk: Money | None = Field(
        default=None,
        description="Matches exceptions with at least this much at risk, in the same currency.",
    )
    owner_team: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    severity: Severity | None = Field(
        default=None, description="Unset: the severity the workflow raised it with."
    )
    sla: timedelta | None = Field(
        default=None,
        description="Time to resolve before escalation (ISO 8601, e.g. PT30M); unset: the "
        "workflow's SLA.",
    )

    @field_validator("sla")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("sla must be a positive duration, e.g. PT30M")
        return value

    @property
    def catch_all(self) -> bool:
        return (
            self.workflow is None
            and self.channel is None
            and self.code is None
            and self.min_money_at_risk is None
        )

    def matches(
        self, workflow: str, channel: str | None, code: str, money_at_risk: Money | None
    ) -> bool:
        if self.workflow is not None and self.workflow != workflow:
            return False
        if self.channel is not None and self.channel != channel:
            return False
        if self.code is not None and self.code != code:
            return False
        floor = self.min_money_at_risk
        if floor is not None:
            if money_at_risk is None or money_at_risk.currency != floor.currency:
                return False
            if money_at_risk.amount < floor.amount:
                return False
        return True

    def covers(self, later: RoutingRule) -> bool:
        """True when every exception the later rule matches is matched by this one already."""
        for mine, theirs in (
            (self.workflow, later.workflow),
            (self.channel, later.channel),
            (self.code, later.code),
        ):
            if mine is not None and mine != theirs:
                return False
        floor, other = self.min_money_at_risk, later.min_money_at_risk
        if floor is None:
            return True
        return (
            other is not None and other.currency == floor.currency and other.amount >= floor.amount
        )


@dataclass(frozen=True)
class Route:
    """Where an exception goes: its owner team, its severity (None: as raised) and its SLA."""

    owner_team: str
    severity: Severity | None
    sla: timedelta
    rule: str
    """Which rule decided: its name, '#n', or 'default'."""


class Routing:
    """The rules in order, first match wins, then the default."""

    def __init__(self, rules: Sequence[RoutingRule] = ()) -> None:
        self.rules = tuple(rules)

    def route(
        self,
        *,
        workflow: str,
        channel: str | None,
        code: str,
        money_at_risk: Money | None = None,
    ) -> Route:
        for position, rule in enumerate(self.rules, start=1):
            if rule.matches(workflow, channel, code, money_at_risk):
                return Route(
                    owner_team=rule.owner_team,
                    severity=rule.severity,
                    sla=rule.sla or policy_for(workflow).sla,
                    rule=rule.name or f"#{position}",
                )
        return Route(
            owner_team=DEFAULT_OWNER_TEAM,
            severity=None,
            sla=policy_for(workflow).sla,
            rule="default",
        )


DEFAULT_ROUTING = Routing()


class ExceptionRoutingConfigError(ValueError):
    """The configured routing rules are unusable; `problems` lists every mistake found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(
            f"exception routing from {source}: {len(problems)} problem(s)\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )


_RULE = TypeAdapter(RoutingRule)


def load_routing_config(path_or_json: str) -> Routing:
    """Rules from a JSON array (text starting with '[') or from a file holding one.

    Each rule is validated; the error lists every invalid rule with pydantic's messages, and
    every rule that can never match because an earlier one matches all it would.
    """
    text = path_or_json.strip()
    source = "inline JSON"
    if not text.startswith(("[", "{")):
        path = Path(text).expanduser()
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ExceptionRoutingConfigError(
                source, [f"cannot read the file: {exc.strerror or exc}"]
            ) from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExceptionRoutingConfigError(source, [f"not valid JSON: {exc}"]) from exc
    if not isinstance(document, list):
        raise ExceptionRoutingConfigError(
            source, ["expected a JSON array of routing rules, e.g. [{...}, {...}]"]
        )
    rules: list[tuple[int, RoutingRule]] = []
    problems: list[str] = []
    for position, item in enumerate(document, start=1):
        label = f"rule #{position}"
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            label += f" ({item['name']!r})"
        try:
            rule = _RULE.validate_python(item)
        except ValidationError as exc:
            problems.append(f"{label}: " + "; ".join(_messages(exc)))
            continue
        shadowing = next((p for p, earlier in rules if earlier.covers(rule)), None)
        if shadowing is not None:
            problems.append(
                f"{label} can never match: rule #{shadowing} matches every exception it would"
            )
        rules.append((position, rule))
    if problems:
        raise ExceptionRoutingConfigError(source, problems)
    return Routing([rule for _, rule in rules])


def _messages(error: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(part) for part in item['loc']) or '(rule)'}: {item['msg']}"
        for item in error.errors(include_url=False)
    ]


# ---------------------------------------------------------------- the rules of each database

_installed: weakref.WeakKeyDictionary[Engine, Routing] = weakref.WeakKeyDictionary()


def install_routing(store: Store, routing: Routing) -> None:
    """Route the exceptions raised through this store's database with these rules."""
    _installed[store.database.engine] = routing


def routing_for(conn: Connection) -> Routing:
    """The rules installed for the connection's database, else the default routing."""
    return _installed.get(conn.engine, DEFAULT_ROUTING)
