"""Errors a system API backend reports to its callers."""

from __future__ import annotations

from gateway_infra.problems import BACKEND_UNAVAILABLE, NOT_FOUND, ProblemError


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
