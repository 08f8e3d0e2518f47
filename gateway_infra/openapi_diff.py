"""Breaking changes between two OpenAPI 3.1 documents of one API: what a client written against
the released document would trip over in the current one.

Operations are matched by method and path template (a renamed path parameter is the same URL);
parameters by where they go and their name (path parameters by position); request bodies and
responses by media type, their schemas property by property with `$ref`s resolved. A schema is
read in the direction its data travels: a request must still accept everything it accepted
(nothing removed, nothing newly required, no type dropped, no constraint narrowed), a response
must still give everything it gave (no field removed or made optional, no new type). Additions
pass: new operations, optional parameters and fields, response fields, widened constraints, new
enum values.

A removed operation is allowed once its sunset has passed: it was deprecated in the released
document (`deprecated: true`, or the whole document is a deprecated version) and the sunset is
the operation's `x-sunset`, else the document's `info.x-sunset`, else the sunset the caller
knows for the whole document (partner v1: its Sunset header).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
Direction = Literal["request", "response"]

RULES: dict[str, str] = {
    "removed-operation": "an operation was removed (or removed before its sunset)",
    "removed-parameter": "a parameter was removed or renamed",
    "removed-field": "a field, a request body or an accepted alternative was removed or renamed",
    "new-required-parameter": "a new parameter is required",
    "new-required-field": "a new request field or request body is required",
    "optional-made-required": "an optional parameter, field or request body is now required",
    "response-field-made-optional": "a response field that was always given may now be absent",
    "type-changed": "a type changed (a request type dropped, or a new type in a response)",
    "removed-enum-value": "an enum value was removed",
    "narrowed-constraint": "a request constraint was narrowed (length, range, items, pattern...)",
    "changed-security": "the security requirements, scopes or security schemes changed",
    "removed-response": "a success response was removed",
    "removed-media-type": "a media type of a request body or response was removed",
    "removed-response-header": "a documented response header was removed",
}

# Request constraints: a lower maximum, or a higher minimum, accepts less.
_LOWER_NARROWS = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties")
_HIGHER_NARROWS = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties")
_PATH_PARAMETER = re.compile(r"\{[^}]*\}")


@dataclass(frozen=True)
class BreakingChange:
    """One breaking change: its rule, where it is (operation, part, field) and what changed."""

    rule: str
    where: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.where}: {self.detail}"


def breaking_changes(
    released: Mapping[str, Any],
    current: Mapping[str, Any] | None,
    *,
    today: date,
    document_sunset: date | None = None,
) -> list[BreakingChange]:
    """Every breaking change from `released` to `current` (None: the document is gone).

    `document_sunset`: the whole released document is a deprecated version that sunsets then.
    """
    return _Comparison(released, current or {}, today, document_sunset).run()


def format_changes(name: str, changes: Sequence[BreakingChange]) -> str:
    """A readable list, one line per change."""
    if not changes:
        return f"{name}: no breaking change"
    noun = "change" if len(changes) == 1 else "changes"
    return "\n".join([f"{name}: {len(changes)} breaking {noun}", *(f"  - {c}" for c in changes)])


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _covers(wide: frozenset[str] | None, narrow: frozenset[str] | None) -> bool:
    """Whether every value of the `narrow` types is also of the `wide` types (None: any type)."""
    if wide is None:
        return True
    if narrow is None:
        return False
    return all(t in wide or (t == "integer" and "number" in wide) for t in narrow)


def _describe_types(types: frozenset[str] | None) -> str:
    return "any type" if types is None else " | ".join(sorted(types)) or "nothing"


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _at(where: str, field: str) -> str:
    return f"{where} field `{field}`" if field else where


def _child(field: str, name: str) -> str:
    return f"{field}.{name}" if field else name


@dataclass
class _Operation:
    label: str
    operation: Mapping[str, Any]
    parameters: dict[tuple[str, str], Mapping[str, Any]]


class _Comparison:
    def __init__(
        self,
        released: Mapping[str, Any],
        current: Mapping[str, Any],
        today: date,
        document_sunset: date | None,
    ) -> None:
        self.old = released
        self.new = current
        self.today = today
        self.document_sunset = document_sunset
        self.changes: list[BreakingChange] = []
        self._seen: set[tuple[object, object, Direction]] = set()
        # Schemas compared by identity stay alive, so an identity is never reused meanwhile.
        self._compared: list[Any] = []

    def report(self, rule: str, where: str, detail: str) -> None:
        self.changes.append(BreakingChange(rule, where, detail))

    def run(self) -> list[BreakingChange]:
        old_operations = self._operations(self.old)
        new_operations = self._operations(self.new)
        for key, old in old_operations.items():
            new = new_operations.get(key)
            if new is None:
                self._removed_operation(old)
                continue
            self._operation(old, new)
        if self.new:
            self._security_schemes()
        return self.changes

    # ------------------------------------------------------------------ operations

    def _operations(self, document: Mapping[str, Any]) -> dict[tuple[str, str], _Operation]:
        found: dict[tuple[str, str], _Operation] = {}
        for path, raw_item in (document.get("paths") or {}).items():
            item = self._resolve(document, raw_item)[1]
            template = _PATH_PARAMETER.sub("{}", path)
            path_names = [name.strip("{}") for name in _PATH_PARAMETER.findall(path)]
            for method in HTTP_METHODS:
                operation = item.get(method)
                if not isinstance(operation, Mapping):
                    continue
                parameters: dict[tuple[str, str], Mapping[str, Any]] = {}
                for raw in [*item.get("parameters", ()), *operation.get("parameters", ())]:
                    parameter = self._resolve(document, raw)[1]
                    parameters[self._parameter_key(parameter, path_names)] = parameter
                found[(method, template)] = _Operation(
                    f"{method.upper()} {path}", operation, parameters
                )
        return found

    @staticmethod
    def _parameter_key(parameter: Mapping[str, Any], path_names: list[str]) -> tuple[str, str]:
        location, name = str(parameter.get("in")), str(parameter.get("name"))
        if location == "path" and name in path_names:
            return location, f"#{path_names.index(name)}"
        if location == "header":
            return location, name.lower()
        return location, name

    def _removed_operation(self, old: _Operation) -> None:
        operation = old.operation
        info = self.old.get("info") or {}
        deprecated = operation.get("deprecated") is True
        sunset = _date(operation.get("x-sunset")) if deprecated else None
        if sunset is None and "x-sunset" in info:
            deprecated, sunset = True, _date(info["x-sunset"])
        if sunset is None and self.document_sunset is not None:
            deprecated, sunset = True, self.document_sunset
        if deprecated and sunset is not None and self.today >= sunset:
            return
        if deprecated and sunset is not None:
            detail = f"operation removed before its sunset ({sunset.isoformat()})"
        elif deprecated:
            detail = "deprecated operation removed, but it has no sunset date (x-sunset)"
        else:
            detail = "operation removed (deprecate it with a sunset date first)"
        self.report("removed-operation", old.label, detail)

    def _operation(self, old: _Operation, new: _Operation) -> None:
        where = new.label
        self._security(where, old.operation, new.operation)
        self._parameters(where, old, new)
        self._request_body(
            where, old.operation.get("requestBody"), new.operation.get("requestBody")
        )
        self._responses(
            where, old.operation.get("responses") or {}, new.operation.get("responses") or {}
        )

    # ------------------------------------------------------------------ security

    def _requirements(self, document: Mapping[str, Any], operation: Mapping[str, Any]) -> set[Any]:
        requirements = operation.get("security", document.get("security")) or [{}]
        return {
            tuple(sorted((scheme, tuple(sorted(scopes))) for scheme, scopes in alt.items()))
            for alt in requirements
        }

    def _security(self, where: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        before = self._requirements(self.old, old)
        after = self._requirements(self.new, new)
        if before <= after:
            return

        def show(requirements: set[Any]) -> str:
            return " or ".join(
                "+".join(f"{scheme} [{', '.join(scopes)}]" for scheme, scopes in alt) or "none"
                for alt in sorted(requirements)
            )

        self.report("changed-security", where, f"security {show(before)} became {show(after)}")

    def _security_schemes(self) -> None:
        old_schemes = (self.old.get("components") or {}).get("securitySchemes") or {}
        new_schemes = (self.new.get("components") or {}).get("securitySchemes") or {}
        for name, raw in old_schemes.items():
            where = f"security scheme `{name}`"
            old = self._resolve(self.old, raw)[1]
            if name not in new_schemes:
                self.report("changed-security", where, "removed")
                continue
            new = self._resolve(self.new, new_schemes[name])[1]
            for key in ("type", "scheme", "in", "name", "openIdConnectUrl"):
                if old.get(key) != new.get(key):
                    self.report(
                        "changed-security", where, f"{key} {old.get(key)!r} became {new.get(key)!r}"
                    )
            new_flows = new.get("flows") or {}
            for flow_name, flow in (old.get("flows") or {}).items():
                if flow_name not in new_flows:
                    self.report("changed-security", where, f"flow {flow_name} removed")
                    continue
                new_flow = new_flows[flow_name]
                for key in ("tokenUrl", "authorizationUrl"):
                    if flow.get(key) != new_flow.get(key):
                        self.report(
                            "changed-security",
                            where,
                            f"{flow_name} {key} {flow.get(key)!r} became {new_flow.get(key)!r}",
                        )
                removed = sorted(set(flow.get("scopes") or {}) - set(new_flow.get("scopes") or {}))
                if removed:
                    self.report("changed-security", where, f"scopes removed: {', '.join(removed)}")

    # ------------------------------------------------------------------ parameters

    def _parameters(self, where: str, old: _Operation, new: _Operation) -> None:
        for key, parameter in old.parameters.items():
            label = f"{where} parameter `{parameter.get('name')}` ({parameter.get('in')})"
            replacement = new.parameters.get(key)
            if replacement is None:
                self.report("removed-parameter", label, "removed or renamed")
                continue
            if not parameter.get("required") and replacement.get("required"):
                self.report("optional-made-required", label, "optional parameter now required")
            self._schema(
                label, "", _parameter_schema(parameter), _parameter_schema(replacement), "request"
            )
        for key, parameter in new.parameters.items():
            if key not in old.parameters and parameter.get("required"):
                label = f"{where} parameter `{parameter.get('name')}` ({parameter.get('in')})"
                self.report("new-required-parameter", label, "new required parameter")

    # ------------------------------------------------------------------ bodies and responses

    def _request_body(self, where: str, raw_old: Any, raw_new: Any) -> None:
        label = f"{where} request body"
        old = self._resolve(self.old, raw_old)[1] if raw_old is not None else None
        new = self._resolve(self.new, raw_new)[1] if raw_new is not None else None
        if old is None:
            if new is not None and new.get("required"):
                self.report("new-required-field", label, "a request body is now required")
            return
        if new is None:
            self.report("removed-field", label, "request body removed")
            return
        if not old.get("required") and new.get("required"):
            self.report("optional-made-required", label, "optional request body now required")
        self._content(label, old.get("content") or {}, new.get("content") or {}, "request")

    def _responses(self, where: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        for status, raw in old.items():
            label = f"{where} response {status}"
            if status not in new:
                if str(status).startswith("2"):
                    self.report("removed-response", label, "success response removed")
                continue
            old_response = self._resolve(self.old, raw)[1]
            new_response = self._resolve(self.new, new[status])[1]
            new_headers = {
                name.lower(): header for name, header in (new_response.get("headers") or {}).items()
            }
            for name, header in (old_response.get("headers") or {}).items():
                header_label = f"{label} header `{name}`"
                if name.lower() not in new_headers:
                    self.report("removed-response-header", header_label, "header removed")
                    continue
                self._schema(
                    header_label,
                    "",
                    _parameter_schema(self._resolve(self.old, header)[1]),
                    _parameter_schema(self._resolve(self.new, new_headers[name.lower()])[1]),
                    "response",
                )
            self._content(
                label,
                old_response.get("content") or {},
                new_response.get("content") or {},
                "response",
            )

    def _content(
        self,
        label: str,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        direction: Direction,
    ) -> None:
        for media_type, old_media in old.items():
            media_label = f"{label} ({media_type})"
            if media_type not in new:
                self.report("removed-media-type", media_label, "media type removed")
                continue
            self._schema(
                media_label, "", old_media.get("schema"), new[media_type].get("schema"), direction
            )

    # ------------------------------------------------------------------ schemas

    def _resolve(self, document: Mapping[str, Any], node: Any) -> tuple[str | None, Any]:
        """Follow local `$ref`s; answers the last reference's name and the schema it names."""
        name: str | None = None
        for _ in range(32):
            if not isinstance(node, Mapping) or "$ref" not in node:
                break
            ref = str(node["$ref"])
            if not ref.startswith("#/"):
                break
            name = ref
            target: Any = document
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, Mapping) else None
            node = target if target is not None else {}
        return name, node

    def _flatten(self, document: Mapping[str, Any], node: Any) -> Mapping[str, Any]:
        """A schema with its `allOf` parts merged in (properties and required of all of them)."""
        if not isinstance(node, Mapping):
            return {}
        if "allOf" not in node:
            return node
        merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        properties = dict(merged.get("properties") or {})
        required = list(merged.get("required") or [])
        for part in node["allOf"]:
            resolved = self._flatten(document, self._resolve(document, part)[1])
            properties.update(resolved.get("properties") or {})
            required += [r for r in resolved.get("required") or [] if r not in required]
            for key, value in resolved.items():
                if key not in ("properties", "required"):
                    merged.setdefault(key, value)
        if properties:
            merged["properties"] = properties
        if required:
            merged["required"] = required
        return merged

    def _types(
        self, document: Mapping[str, Any], raw: Any, depth: int = 0
    ) -> frozenset[str] | None:
        """The JSON types a schema admits (None: any)."""
        node = self._flatten(document, self._resolve(document, raw)[1])
        if depth > 16:
            return None
        if "type" in node:
            declared = node["type"]
            return frozenset([declared] if isinstance(declared, str) else declared)
        if "const" in node:
            return frozenset({_json_type(node["const"])})
        if "enum" in node:
            return frozenset(_json_type(value) for value in node["enum"])
        for key in ("anyOf", "oneOf"):
            if key in node:
                found: set[str] = set()
                for branch in node[key]:
                    types = self._types(document, branch, depth + 1)
                    if types is None:
                        return None
                    found |= types
                return frozenset(found)
        if "properties" in node:
            return frozenset({"object"})
        return None

    def _branches(self, document: Mapping[str, Any], node: Mapping[str, Any]) -> list[Any] | None:
        """The non-null alternatives of an anyOf/oneOf schema; None when it has none."""
        for key in ("anyOf", "oneOf"):
            if key in node:
                return [
                    branch
                    for branch in node[key]
                    if self._types(document, branch) != frozenset({"null"})
                ]
        return None

    def _schema(
        self, where: str, field: str, raw_old: Any, raw_new: Any, direction: Direction
    ) -> None:
        if raw_old is None or raw_new is None:
            return
        old_name, old_node = self._resolve(self.old, raw_old)
        new_name, new_node = self._resolve(self.new, raw_new)
        key = (old_name or id(old_node), new_name or id(new_node), direction)
        if key in self._seen:
            return
        self._seen.add(key)
        self._compared += [old_node, new_node]
        old = self._flatten(self.old, old_node)
        new = self._flatten(self.new, new_node)
        label = _at(where, field)

        old_types, new_types = self._types(self.old, old), self._types(self.new, new)
        if direction == "request" and not _covers(new_types, old_types):
            self.report(
                "type-changed",
                label,
                f"accepted {_describe_types(old_types)}, now {_describe_types(new_types)}",
            )
            return
        if direction == "response" and not _covers(old_types, new_types):
            self.report(
                "type-changed",
                label,
                f"answered {_describe_types(old_types)}, now {_describe_types(new_types)}",
            )
            return

        old_branches = self._branches(self.old, old)
        new_branches = self._branches(self.new, new)
        if old_branches is None and new_branches is None:
            self._node(where, field, old, new, direction)
            return
        self._alternatives(
            where,
            field,
            old_branches if old_branches is not None else [old],
            new_branches if new_branches is not None else [new],
            direction,
        )

    def _alternatives(
        self, where: str, field: str, old: list[Any], new: list[Any], direction: Direction
    ) -> None:
        """Pair the alternatives of two unions (by reference name, else by type) and compare."""
        if len(old) == 1 and len(new) == 1:
            self._schema(where, field, old[0], new[0], direction)
            return
        unmatched = list(new)
        pairs: list[tuple[Any, Any]] = []
        leftovers: list[Any] = []
        for branch in old:
            name = self._resolve(self.old, branch)[0]
            match = next(
                (
                    candidate
                    for candidate in unmatched
                    if name is not None and self._resolve(self.new, candidate)[0] == name
                ),
                None,
            )
            if match is None:
                leftovers.append(branch)
            else:
                unmatched.remove(match)
                pairs.append((branch, match))
        for branch in leftovers:
            types = self._types(self.old, branch)
            same_type = [c for c in unmatched if self._types(self.new, c) == types]
            if len(same_type) == 1:
                unmatched.remove(same_type[0])
                pairs.append((branch, same_type[0]))
            elif direction == "request":
                self.report(
                    "removed-field",
                    _at(where, field),
                    f"alternative {self._label(self.old, branch)} no longer accepted",
                )
        for old_branch, new_branch in pairs:
            self._schema(where, field, old_branch, new_branch, direction)

    def _label(self, document: Mapping[str, Any], branch: Any) -> str:
        name = self._resolve(document, branch)[0]
        if name is not None:
            return f"`{name.rsplit('/', 1)[-1]}`"
        return _describe_types(self._types(document, branch))

    def _node(
        self,
        where: str,
        field: str,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        direction: Direction,
    ) -> None:
        label = _at(where, field)
        self._enum(label, old, new, direction)
        if direction == "request":
            self._constraints(label, old, new)
        self._properties(where, field, old, new, direction)
        if "items" in old and "items" in new:
            self._schema(where, f"{field}[]", old["items"], new["items"], direction)
        old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
        if isinstance(old_extra, Mapping) and isinstance(new_extra, Mapping):
            self._schema(where, _child(field, "*"), old_extra, new_extra, direction)

    def _enum(
        self, label: str, old: Mapping[str, Any], new: Mapping[str, Any], direction: Direction
    ) -> None:
        old_values = _enum_values(old)
        new_values = _enum_values(new)
        if old_values is None:
            if new_values is not None and direction == "request":
                self.report(
                    "narrowed-constraint",
                    label,
                    f"now limited to {', '.join(map(repr, new_values))}",
                )
            return
        if new_values is None:
            return
        removed = [value for value in old_values if value not in new_values]
        if removed:
            self.report(
                "removed-enum-value", label, f"value(s) removed: {', '.join(map(repr, removed))}"
            )

    def _constraints(self, label: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        for key in _LOWER_NARROWS + _HIGHER_NARROWS:
            before, after = _number(old.get(key)), _number(new.get(key))
            if after is None:
                continue
            if before is None:
                self.report("narrowed-constraint", label, f"{key} {new[key]} added")
            elif (after < before) if key in _LOWER_NARROWS else (after > before):
                verb = "lowered" if key in _LOWER_NARROWS else "raised"
                self.report(
                    "narrowed-constraint", label, f"{key} {verb} from {old[key]} to {new[key]}"
                )
        for key in ("pattern", "format"):
            if key in new and new[key] != old.get(key):
                detail = (
                    f"{key} {new[key]!r} added"
                    if key not in old
                    else f"{key} changed from {old[key]!r} to {new[key]!r}"
                )
                self.report("narrowed-constraint", label, detail)
        before, after = _number(old.get("multipleOf")), _number(new.get("multipleOf"))
        if after is not None and (before is None or (before % after) != 0):
            self.report(
                "narrowed-constraint",
                label,
                f"multipleOf {new['multipleOf']} (was {old.get('multipleOf', 'none')})",
            )
        if new.get("uniqueItems") is True and old.get("uniqueItems") is not True:
            self.report("narrowed-constraint", label, "items must now be unique")
        if (
            new.get("additionalProperties") is False
            and old.get("additionalProperties") is not False
        ):
            self.report("narrowed-constraint", label, "other properties no longer accepted")

    def _properties(
        self,
        where: str,
        field: str,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        direction: Direction,
    ) -> None:
        old_properties: Mapping[str, Any] = old.get("properties") or {}
        new_properties: Mapping[str, Any] = new.get("properties") or {}
        old_required = set(old.get("required") or ())
        new_required = set(new.get("required") or ())
        for name, schema in old_properties.items():
            path = _child(field, name)
            if name not in new_properties:
                self.report("removed-field", _at(where, path), "removed or renamed")
                continue
            if direction == "request" and name not in old_required and name in new_required:
                self.report(
                    "optional-made-required", _at(where, path), "optional field now required"
                )
            if direction == "response" and name in old_required and name not in new_required:
                self.report(
                    "response-field-made-optional", _at(where, path), "no longer always given"
                )
            self._schema(where, path, schema, new_properties[name], direction)
        if direction == "request":
            for name in new_properties:
                if name not in old_properties and name in new_required:
                    self.report(
                        "new-required-field", _at(where, _child(field, name)), "new required field"
                    )


def _enum_values(node: Mapping[str, Any]) -> list[Any] | None:
    if "enum" in node:
        return list(node["enum"])
    if "const" in node:
        return [node["const"]]
    return None


def _parameter_schema(parameter: Mapping[str, Any]) -> Any:
    if "schema" in parameter:
        return parameter["schema"]
    for media in (parameter.get("content") or {}).values():
        return media.get("schema")
    return None


def _date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None
