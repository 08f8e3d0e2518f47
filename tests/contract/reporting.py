"""The summary of the contract runs at the end of pytest's output: per document, the operations
and the cases sent to each. Each test's report carries what it sent (tests/contract/conftest.py),
so the summary is whole also when pytest-xdist runs the tests in several processes; the hooks of
tests/conftest.py call these functions, in the process that prints."""

from __future__ import annotations

import json
from typing import Any

import pytest

REPORT_KEY = "schemathesis"
_cases: dict[str, dict[str, int]] = {}
_without_inputs: set[str] = set()
_http_runs: dict[str, str] = {}


def collect(report: pytest.TestReport) -> None:
    if report.when != "teardown":
        return
    for key, value in report.user_properties:
        if key != REPORT_KEY or not isinstance(value, str):
            continue
        sent = json.loads(value)
        for document, counts in sent["cases"].items():
            totals = _cases.setdefault(document, {})
            for label, count in counts.items():
                totals[label] = totals.get(label, 0) + count
        _without_inputs.update(sent["without_inputs"])
        _http_runs.update(sent["http"])


def summarize(terminalreporter: Any) -> None:
    if not _cases and not _http_runs:
        return
    terminalreporter.section("schemathesis: operations and cases exercised")
    for document, summary in sorted(_http_runs.items()):
        terminalreporter.write_line(f"{document}: {summary}")
    for document, per_operation in sorted(_cases.items()):
        total = sum(per_operation.values())
        fewest = min(per_operation.values())
        terminalreporter.write_line(
            f"{document}: {len(per_operation)} operations, {total} cases "
            f"(fewest for one operation: {fewest})"
        )
        for label, cases in sorted(per_operation.items()):
            note = "  (no parameters, no body)" if label in _without_inputs else ""
            terminalreporter.write_line(f"  {cases:>5}  {label}{note}")
