"""Outbound safety of webhook calls: where the gateway may connect, checked at the socket.

A webhook URL is chosen by a partner, so a careless or hostile one could make the gateway call
its own network (metadata services, databases, admin consoles). Every host is resolved and each
of its addresses must be public; the connection is then opened to exactly the address that was
checked, so a DNS answer that changes between the check and the connect cannot redirect it.
TLS still verifies the certificate against the URL's host name (SNI and the Host header are the
name, only the TCP connection is pinned). Redirects are never followed; proxies from the
environment are ignored. Loopback may be allowed for tests and local use.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Host name and port to the addresses it resolves to (text)."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's resolver (getaddrinfo), without blocking the event loop."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class DestinationRefused(Exception):
    """The webhook URL or one of its host's addresses is not an allowed destination."""


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses outbound calls may reach: public unicast ones, and loopback if allowed."""

    allow_loopback: bool = False
    resolver: Resolver = field(default=system_resolver, compare=False)

    def refusal(self, address: IpAddress) -> str | None:
        """Why the address is refused, or None when it is allowed."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return self.refusal(address.ipv4_mapped)
        if address.is_loopback:
            return None if self.allow_loopback else "a loopback address"
        if address.is_unspecified:
            return "the unspecified address"
        if address.is_link_local:
            return "a link-local address"
        if address.is_multicast:
            return "a multicast address"
        if address.is_reserved:
            return "a reserved address"
        if address.is_private:
            return "a private address"
        if not address.is_global:
            return "not a public address"
        return None

    def check(self, host: str, addresses: Iterable[IpAddress]) -> list[IpAddress]:
        """The addresses, all of them allowed; else DestinationRefused naming the first refused."""
        checked = list(addresses)
        if not checked:
            raise DestinationRefused(f"{host} has no address")
        for address in checked:
            reason = self.refusal(address)
            if reason is not None:
                if host.strip("[]") == str(address):
                    raise DestinationRefused(f"{address} is {reason}")
                raise DestinationRefused(f"{host} resolves to {address}, {reason}")
        return checked

    async def resolve(self, host: str, port: int) -> list[IpAddress]:
        """Resolve the host (an IP literal stands for itself) and check every address."""
        literal = _ip_literal(host)
        if literal is not None:
            return self.check(host, [literal])
        try:
            answers = await self.resolver(host, port)
        except (OSError, UnicodeError, ValueError) as exc:
            raise DestinationRefused(f"{host} does not resolve: {exc}") from exc
        found: list[IpAddress] = []
        for answer in answers:
            try:
                address = ipaddress.ip_address(answer.split("%", 1)[0])
            except ValueError as exc:
                raise DestinationRefused(f"{host} resolves to {answer!r}, not an address") from exc
            if address not in found:
                found.append(address)
        return self.check(host, found)

    def https_required(self, addresses: Iterable[IpAddress]) -> bool:
        """Plain http is accepted for an allowed loopback destination only."""
        return not (self.allow_loopback and all(a.is_loopback for a in addresses))


def _ip_literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


MAX_URL_LENGTH = 2000


async def validate_url(url: str, policy: AddressPolicy) -> str:
    """The URL as it will be called, when it is an acceptable webhook destination.

    Absolute http(s) URL without credentials or fragment, whose host resolves to allowed
    addresses only; https unless the destination is an allowed loopback address."""
    if len(url) > MAX_URL_LENGTH:
        raise DestinationRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DestinationRefused(f"the URL is malformed: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise DestinationRefused("the URL must start with https://")
    if not parts.hostname:
        raise DestinationRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise DestinationRefused("the URL must not carry credentials")
    if parts.fragment:
        raise DestinationRefused("the URL must not have a fragment")
    addresses = await policy.resolve(
        parts.hostname, port or (443 if parts.scheme == "https" else 80)
    )
    if parts.scheme != "https" and policy.https_required(addresses):
        raise DestinationRefused("the URL must start with https://")
    return url


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks the host itself, then connects to the checked address."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.policy.resolve(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused("webhooks are not sent to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's TLS settings (certificates verified against the host name, the environment's
    certificate files ignored), made once: loading the CA bundle costs tens of milliseconds."""
    return httpx.create_ssl_context(trust_env=False)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a connection pool whose every connection is checked and pinned."""

    def __init__(self, policy: AddressPolicy, *, max_connections: int = 100) -> None:
        super().__init__(verify=_tls_context(), trust_env=False)
        # httpx builds its pool without a way to pass a network backend: replace it with one
        # that has ours (same TLS settings: certificates verified against the host name).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_tls_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections // 5 or 1,
            keepalive_expiry=30.0,
            network_backend=_PinnedBackend(policy),
        )


def outbound_client(policy: AddressPolicy, *, timeout_seconds: float) -> httpx.AsyncClient:
    """The HTTP client of webhook calls: pinned, checked connections and no redirects."""
    return httpx.AsyncClient(
        transport=PinnedTransport(policy),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(timeout_seconds),
        headers={"user-agent": "RetailSyncGateway-Webhooks/1", "accept-encoding": "identity"},
    )
