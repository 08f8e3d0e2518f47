"""Feed documents Amazon hands over are fetched only over https from allowed hosts, and read
and inflated only up to the document limit, whatever they claim to hold."""

from __future__ import annotations

import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from gateway_infra.clock import ManualClock
from process_api.marketplaces.amazon import AmazonProfile, HostNotAllowed, SpApiClient
from process_api.marketplaces.amazon.http import UnreadableDocument
from tests.amazon.conftest import CREDENTIALS

pytestmark = [pytest.mark.amazon, pytest.mark.xdist_group("amazon")]
MiB = 1024 * 1024
DOCUMENT = "https://tortuga-prod-na.s3-external-1.amazonaws.com/report-1"


def profile(endpoint: str = "https://sellingpartnerapi-na.amazon.com") -> AmazonProfile:
    return AmazonProfile(
        channel="amazon_us",
        marketplace_id="ATVPDKIKX0DER",
        seller_id="S",
        endpoint=endpoint,
        document_hosts=["tortuga-prod-na.s3-external-1.amazonaws.com"],
    )


def client_serving(
    body: Callable[[], AsyncIterator[bytes]], *, endpoint: str | None = None
) -> SpApiClient:
    async def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body())

    return SpApiClient(
        profile(endpoint) if endpoint else profile(),
        CREDENTIALS,
        ManualClock(),
        transport=httpx.MockTransport(handler),
        max_document_bytes=MiB,
    )


def gzip_of_zeros(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(MiB)
    return b"".join([*(packer.compress(chunk) for _ in range(size // MiB)), packer.flush()])


async def test_a_gzip_bomb_is_inflated_only_up_to_the_document_limit() -> None:
    bomb = gzip_of_zeros(64 * MiB)  # some 64 KiB on the wire

    async def body() -> AsyncIterator[bytes]:
        yield bomb

    client = client_serving(body)
    tracemalloc.start()
    try:
        with pytest.raises(UnreadableDocument, match="larger than 1048576 bytes"):
            await client.download_document(DOCUMENT, "GZIP")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await client.aclose()

    assert peak < 16 * MiB  # never the 64 MiB it claims to hold


async def test_a_document_is_read_only_up_to_the_document_limit() -> None:
    pulled: list[int] = []
    chunk = bytes(64 * 1024)

    async def endless_enough() -> AsyncIterator[bytes]:
        for n in range(1024):  # 64 MiB
            pulled.append(n)
            yield chunk

    client = client_serving(endless_enough)
    try:
        with pytest.raises(UnreadableDocument, match="larger than"):
            await client.download_document(DOCUMENT, None)
    finally:
        await client.aclose()

    assert len(pulled) <= MiB // len(chunk) + 1


async def test_a_document_within_the_limit_is_inflated_whole() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield gzip_of_zeros(MiB)

    client = client_serving(body)
    try:
        assert await client.download_document(DOCUMENT, "GZIP") == bytes(MiB)
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "http://tortuga-prod-na.s3-external-1.amazonaws.com:443/report-1",
        "http://tortuga-prod-na.s3-external-1.amazonaws.com/report-1",
        "ftp://tortuga-prod-na.s3-external-1.amazonaws.com:443/report-1",
    ],
)
async def test_a_document_url_that_is_not_https_is_refused_even_on_an_allowed_host(
    url: str,
) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"never served"

    client = client_serving(body)
    try:
        with pytest.raises(HostNotAllowed):
            await client.download_document(url, None)
        with pytest.raises(HostNotAllowed):
            await client.upload_document(url, b"{}", "application/json")
    finally:
        await client.aclose()


async def test_plain_http_document_urls_are_taken_only_from_an_http_endpoint() -> None:
    bench = SpApiClient(profile("http://127.0.0.1:8080"), CREDENTIALS, ManualClock())
    try:
        bench.check_url("download_document", "http://127.0.0.1:8080/documents/1")
        with pytest.raises(HostNotAllowed):
            bench.check_url("download_document", "ftp://127.0.0.1:8080/documents/1")
    finally:
        await bench.aclose()
