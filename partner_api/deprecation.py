"""Deprecation (RFC 9745), Sunset (RFC 8594) and their Links on answers of a deprecated version."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def deprecation_headers(
    deprecated_at: datetime | None, sunset_at: datetime | None, link: str
) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    links: list[str] = []
    if deprecated_at is not None:
        headers.append((b"deprecation", f"@{int(deprecated_at.timestamp())}".encode()))
        links.append(f'<{link}>; rel="deprecation"; type="text/markdown"')
    if sunset_at is not None:
        headers.append((b"sunset", format_datetime(sunset_at, usegmt=True).encode()))
        links.append(f'<{link}>; rel="sunset"; type="text/markdown"')
    if links:
        headers.append((b"link", ", ".join(links).encode()))
    return headers


class DeprecationMiddleware:
    """Adds the version's deprecation headers to every HTTP response."""

    def __init__(self, app: ASGIApp, *, headers: list[tuple[bytes, bytes]]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.headers:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)
