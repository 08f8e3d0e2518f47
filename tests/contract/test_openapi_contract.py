"""Every operation of the system, process and partner v1/v2 documents, in process against the
composed gateway app: schemathesis' examples, coverage and fuzzing phases (20 fuzzed cases per
operation, fixed seed; tests/contract/schemathesis.toml), every default check, a token from the
token endpoint. Business answers are documented in each operation and listed in the config.

One pytest test per operation, built as `schema.parametrize()` builds it. The pytest items that
`parametrize()` itself collects all share their test's node id under pytest 9.2 (it names them
with the operation but passes no parametrization), which pytest-xdist, `make test`'s runner,
cannot tell apart: it ran one operation of each document."""

from __future__ import annotations

from typing import Any

import pytest
from schemathesis.checks import load_all_checks
from schemathesis.core.result import Ok
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.pytest._test_builder import build_operation_test

from tests.contract import hooks  # noqa: F401  (a fresh Idempotency-Key per case)
from tests.contract.conftest import ContractRuntime, count_case
from tests.contract.documents import load_schema

pytestmark = pytest.mark.contract

SCHEMAS = {
    document: load_schema(document)
    for document in ("system", "process", "partner_v1", "partner_v2")
}
OPERATIONS = [
    pytest.param(document, result.ok().label, id=f"{document}:{result.ok().label}")
    for document, schema in SCHEMAS.items()
    for result in schema.get_all_operations()
    if isinstance(result, Ok)
]


@pytest.mark.parametrize(("document", "label"), OPERATIONS)
def test_operation_keeps_its_documented_contract(
    document: str, label: str, contract_runtime: ContractRuntime
) -> None:
    schema = SCHEMAS[document]
    operation = schema.find_operation_by_label(label)
    assert operation is not None
    has_inputs = bool(operation.body) or any(True for _ in operation.iter_parameters())

    def check(case: Any) -> None:
        count_case(document, label, has_inputs=has_inputs)
        case.call_and_validate(app=contract_runtime.app, headers=contract_runtime.headers(document))

    load_all_checks()
    run_every_phase = build_operation_test(
        config=schema.config,
        operation=operation,
        test_func=check,
        given_kwargs={},
        feedback=FeedbackSources(),
    )
    run_every_phase()
