"""System of record per object and field: declared in configuration, validated at start-up and
enforced on every write a system API makes. A write to a system that does not own the field is
refused (problem+json) and recorded as a policy event."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway_infra.problems import ProblemError, ProblemType
from gateway_infra.unit_of_work import Store, UnitOfWork

log = logging.getLogger("gateway.ownership")

SYSTEMS = frozenset({"erp", "wms", "gateway", "marketplace"})
KNOWN_FIELDS: Mapping[str, frozenset[str]] = {
    "product": frozenset({"name", "status", "tax_class", "list_price"}),
    "customer": frozenset({"name", "email", "phone", "address"}),
    "sales_order": frozenset({"lines", "state"}),
    "invoice": frozenset({"lines"}),
    "credit_note": frozenset({"lines"}),
    "inventory": frozenset({"on_hand", "quarantined"}),
    "fulfilment": frozenset({"lines"}),
    "shipment": frozenset({"packages"}),
    "return": frozenset({"receipt", "inspection"}),
    "reservation": frozenset({"quantity"}),
    "availability": frozenset({"published_quantity"}),
    "order": frozenset({"status", "channel_order_id", "buyer"}),
}
DEFAULT_SYSTEM_OF_RECORD: Mapping[str, str] = {
    "product.*": "erp",
    "customer.*": "erp",
    "sales_order.*": "erp",
    "invoice.*": "erp",
    "credit_note.*": "erp",
    "inventory.*": "wms",
    "fulfilment.*": "wms",
    "shipment.*": "wms",
    "return.*": "wms",
    "reservation.*": "gateway",
    "availability.*": "gateway",
    "order.status": "gateway",
    "order.channel_order_id": "marketplace",
    "order.buyer": "marketplace",
}
NOT_SYSTEM_OF_RECORD = ProblemType(
    "not-system-of-record", "This system does not own the data it was asked to change", 409
)


class OwnershipConfigError(ValueError):
    """The system-of-record map is not valid."""


@dataclass(frozen=True)
class OwnershipMap:
    """Which system owns each known object field."""

    owners: Mapping[tuple[str, str], str]

    @classmethod
    def from_config(cls, config: Mapping[str, str]) -> OwnershipMap:
        """Validate `object.field` (or `object.*`) -> system; every known field needs an owner."""
        owners: dict[tuple[str, str], str] = {}
        problems: list[str] = []
        wildcards = {k: v for k, v in config.items() if k.endswith(".*")}
        exact = {k: v for k, v in config.items() if not k.endswith(".*")}
        for key, system in [*wildcards.items(), *exact.items()]:  # exact entries win
            obj, _, field = key.partition(".")
            if system not in SYSTEMS:
                problems.append(f"{key}: unknown system {system!r} (known: {sorted(SYSTEMS)})")
            elif obj not in KNOWN_FIELDS:
                problems.append(f"{key}: unknown object {obj!r}")
            elif field == "*":
                owners.update({(obj, f): system for f in KNOWN_FIELDS[obj]})
            elif field not in KNOWN_FIELDS[obj]:
                problems.append(f"{key}: unknown field {field!r} of {obj}")
            else:
                owners[(obj, field)] = system
        missing = [
            f"{obj}.{field}"
            for obj, fields in KNOWN_FIELDS.items()
            for field in sorted(fields)
            if (obj, field) not in owners
        ]
        if missing:
            problems.append(f"no system of record for: {', '.join(missing)}")
        if problems:
            raise OwnershipConfigError("invalid system_of_record: " + "; ".join(problems))
        return cls(owners=owners)

    def foreign_fields(self, system: str, obj: str, fields: Iterable[str]) -> dict[str, str]:
        """The fields `system` does not own, each with its owner."""
        return {field: owner for field in fields if (owner := self.owners[(obj, field)]) != system}


class OwnershipPolicy:
    """Refuses writes to a system that is not the record's owner, and records each refusal."""

    def __init__(self, ownership: OwnershipMap, store: Store) -> None:
        self.ownership = ownership
        self.store = store

    async def require(self, system: str, obj: str, *fields: str) -> None:
        foreign = self.ownership.foreign_fields(system, obj, fields)
        if not foreign:
            return
        owners = ", ".join(f"{obj}.{f} belongs to {o}" for f, o in sorted(foreign.items()))

        def record(uow: UnitOfWork) -> None:
            uow.emit(
                "policy.ownership_violation",
                source="system_api.ownership",
                subject=f"{obj}/{','.join(sorted(foreign))}",
                data={"writer": system, "object": obj, "fields": dict(sorted(foreign.items()))},
            )

        await self.store.write(record)
        log.warning(
            "write refused: not the system of record",
            extra={"writer": system, "object": obj, "fields": sorted(foreign)},
        )
        raise ProblemError(
            NOT_SYSTEM_OF_RECORD,
            f"the {system} may not change these fields: {owners}",
            writer=system,
            owners={f"{obj}.{f}": o for f, o in sorted(foreign.items())},
        )
