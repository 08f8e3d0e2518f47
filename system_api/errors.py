"""Errors a system API backend reports to its callers."""

from __future__ import annotations

import httpx

from gateway_infra.problems import BACKEND_UNAVAILABLE, NOT_FOUND, ProblemError, ProblemType

INVALID_STATE = ProblemType(
    "invalid-document-state", "The document's state does not allow this", 409
)
QUANTITY_EXCEEDED = ProblemType("quantity-exceeded", "More units than the document allows", 409)
PACKAGE_AFTER_COMPLETION = ProblemType(
    "package-after-completion", "The fulfilment is complete: its packages are final", 409
)
BACKEND_REJECTED = ProblemType("backend-rejected", "The system of record refused the request", 422)


class BackendUnavailable(ProblemError):
    """The system of record could not be reached or did not answer in time; safe to retry later."""

    def __init__(self, backend: str, detail: str, *, retry_after_seconds: int = 5) -> None:
        super().__init__(
            BACKEND_UNAVAILABLE,
            f"{backend}: {detail}",
            headers={"Retry-After": str(retry_after_seconds)},
            backend=backend,
        )
        self.backend = backend
        self.retry_after_seconds = retry_after_seconds


class DocumentNotFound(ProblemError):
    """The backend has no such document."""

    def __init__(self, what: str, identifier: str) -> None:
        super().__init__(NOT_FOUND, f"no {what} {identifier!r}")


class InvalidDocumentState(ProblemError):
    """The document exists but its state does not allow the change."""

    def __init__(self, detail: str) -> None:
        super().__init__(INVALID_STATE, detail)


class QuantityExceeded(ProblemError):
    """A line would go beyond the quantity its document allows."""

    def __init__(self, detail: str) -> None:
        super().__init__(QUANTITY_EXCEEDED, detail)


class PackageAfterCompletion(ProblemError):
    """A package of a completed fulfilment was sent again: an exception, never a duplicate."""

    def __init__(self, fulfilment_id: str, package_reference: str) -> None:
        super().__init__(
            PACKAGE_AFTER_COMPLETION,
            f"fulfilment {fulfilment_id} is complete; package {package_reference!r} is final",
            fulfilment_id=fulfilment_id,
            package_reference=package_reference,
        )


class BackendRejected(ProblemError):
    """The backend refused the request; its own message is kept for operators."""

    def __init__(self, backend: str, message: str) -> None:
        super().__init__(
            BACKEND_REJECTED,
            f"{backend} refused the request",
            backend=backend,
            backend_message=message,
        )


_RAISED_AGAIN = {
    INVALID_STATE.code: InvalidDocumentState,
    QUANTITY_EXCEEDED.code: QuantityExceeded,
}


def problem_from_response(backend: str, response: httpx.Response) -> ProblemError:
    """The error a system API answered, as the same domain error on the caller's side."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = body.get("code") if isinstance(body, dict) else None
    detail = str(body.get("detail") or body.get("title") or "") if isinstance(body, dict) else ""
    error = _RAISED_AGAIN.get(str(code))
    if error is not None:
        return error(detail)
    if code == PACKAGE_AFTER_COMPLETION.code:
        return PackageAfterCompletion(
            str(body.get("fulfilment_id", "")), str(body.get("package_reference", ""))
        )
    if response.status_code == 404:
        return ProblemError(NOT_FOUND, detail or "not found")
    if 400 <= response.status_code < 500:
        return BackendRejected(backend, detail or response.text[:500])
    return BackendUnavailable(backend, f"HTTP {response.status_code}: {response.text[:200]}")
