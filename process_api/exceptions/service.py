"""Reading exception records, one transaction per call."""

from __future__ import annotations

from contracts.exceptions import ExceptionRecord, ExceptionStatus
from gateway_infra.unit_of_work import Store
from process_api.exceptions import repository as repo


class ExceptionQueue:
    """The exceptions people work through, newest first."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def list(
        self,
        *,
        status: ExceptionStatus | None = None,
        channel: str | None = None,
        workflow: str | None = None,
        subject: str | None = None,
        limit: int = 100,
    ) -> list[ExceptionRecord]:
        return await self.store.read(
            lambda conn: repo.list_exceptions(
                conn,
                status=status,
                channel=channel,
                workflow=workflow,
                subject=subject,
                limit=limit,
            )
        )

    async def get(self, exception_id: str) -> ExceptionRecord | None:
        return await self.store.read(lambda conn: repo.get_exception(conn, exception_id))
