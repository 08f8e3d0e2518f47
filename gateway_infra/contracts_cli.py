"""`retail-gateway contracts export|check`: keep the committed OpenAPI documents equal to what
the apps serve, and refuse breaking changes against the last released documents
(docs/contracts.md)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from gateway_infra import contract_documents as documents_
from gateway_infra.openapi_diff import breaking_changes, format_changes

Outcome = tuple[int, dict[str, Any], str]
ServedDocuments = Callable[[], Mapping[str, documents_.Document]]


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    handler: Callable[[argparse.Namespace, Any], int],
) -> None:
    """The `contracts` command group."""
    contracts = commands.add_parser(
        "contracts", help="committed OpenAPI documents: export them, check for breaking changes"
    )
    sub = contracts.add_subparsers(dest="contracts_command", required=True)
    export = sub.add_parser(
        "export", help="write each app's OpenAPI document into contracts/openapi/"
    )
    export.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a committed document differs from what its app serves",
    )
    export.add_argument(
        "--dir", type=Path, help="where the documents go (default contracts/openapi)"
    )
    check = sub.add_parser(
        "check", help="exit 1 on a breaking change against the last released documents"
    )
    check.add_argument(
        "--released",
        type=Path,
        help="the released documents (default contracts/released)",
    )
    check.add_argument(
        "--current",
        type=Path,
        help="compare the documents of this directory instead of what the apps serve now",
    )
    check.add_argument(
        "--today",
        type=date.fromisoformat,
        help="the day sunsets are judged at, YYYY-MM-DD (default: today, UTC)",
    )
    for parser in sub.choices.values():
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
    contracts.set_defaults(handler=handler)


def run(
    args: argparse.Namespace, *, served: ServedDocuments, sunsets: Mapping[str, date]
) -> Outcome:
    """Run the parsed command: 0 done, 1 the check failed, 2 nothing to compare with."""
    if args.contracts_command == "export":
        return _export(args, served)
    return _check(args, served, sunsets)


def _export(args: argparse.Namespace, served: ServedDocuments) -> Outcome:
    directory: Path = args.dir or documents_.OPENAPI_DIR
    documents = served()
    if args.check:
        drifts = documents_.compare(documents, directory)
        data = {
            "directory": str(directory),
            "differs": [{"document": d.name, "status": d.status} for d in drifts],
        }
        if not drifts:
            return 0, data, "the committed OpenAPI documents are what the apps serve"
        human = "\n".join(
            [
                *(drift.describe() for drift in drifts),
                f"run `{documents_.EXPORT_COMMAND}` and commit contracts/openapi/",
            ]
        )
        return 1, data, human
    outcome = documents_.write(documents, directory)
    return (
        0,
        {"directory": str(directory), "documents": outcome},
        "\n".join(
            f"{status:<9} {documents_.document_path(directory, name)}"
            for name, status in outcome.items()
        ),
    )


def _check(
    args: argparse.Namespace, served: ServedDocuments, sunsets: Mapping[str, date]
) -> Outcome:
    released_dir: Path = args.released or documents_.RELEASED_DIR
    released = documents_.load_documents(released_dir)
    if not released:
        return 2, {}, f"no released OpenAPI documents in {released_dir}"
    current = documents_.load_documents(args.current) if args.current else dict(served())
    today: date = args.today or datetime.now(UTC).date()
    released_on = documents_.released_on(released_dir)
    report: dict[str, list[dict[str, str]]] = {}
    human: list[str] = [
        f"compared with the release of {released_on.isoformat() if released_on else '(no date)'}"
        f" in {released_dir}, on {today.isoformat()}"
    ]
    for name, document in sorted(released.items()):
        changes = breaking_changes(
            document, current.get(name), today=today, document_sunset=sunsets.get(name)
        )
        report[name] = [{"rule": c.rule, "where": c.where, "detail": c.detail} for c in changes]
        human.append(format_changes(name, changes))
    total = sum(len(changes) for changes in report.values())
    data = {
        "released": str(released_dir),
        "released_on": released_on.isoformat() if released_on else None,
        "today": today.isoformat(),
        "breaking": report,
        "new_documents": sorted(set(current) - set(released)),
    }
    if total:
        human.append(
            f"{total} breaking change(s): keep the old behaviour beside the new one (a new "
            "optional field, a new operation or a new API version) or deprecate with a sunset "
            "first (docs/contracts.md)"
        )
        return 1, data, "\n".join(human)
    return 0, data, "\n".join(human)
