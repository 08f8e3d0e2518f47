"""A mock Amazon on loopback for the adapter's tests: Prism serves Amazon's published Orders,
Listings Items and Feeds models and validates every request against them; in front of it, a
small server stands in for what Prism cannot: Login with Amazon's token endpoint, the feed
document store behind the document URLs, and the state Amazon keeps between calls (feed ids and
types, processing status, processing reports: JSON for listings feeds, XML for order
acknowledgement feeds). Every SP-API call still goes to Prism, and its verdict
(the sl-violations header) is recorded."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
from defusedxml.ElementTree import fromstring as defused_fromstring
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

PRISM_VERSION = "5.16.0"
REPO = Path(__file__).resolve().parents[2]
PRISM_PREFIX = REPO / ".cache" / "prism"
PRISM_BIN = PRISM_PREFIX / "node_modules" / ".bin" / "prism"
# API path prefix -> the model that serves it.
MODELS = {
    "/orders/2026-01-01/": "models/orders-api-model/orders_2026-01-01.json",
    "/orders/v0/": "models/orders-api-model/ordersV0.json",
    "/listings/2021-08-01/": "models/listings-items-api-model/listingsItems_2021-08-01.json",
    "/feeds/2021-06-30/": "models/feeds-api-model/feeds_2021-06-30.json",
}
CLIENT_ID = "amzn1.application-oa2-client.test"
CLIENT_SECRET = "test-client-secret"
REFRESH_TOKEN = "Atzr|test-refresh-token"


def models_folder() -> Path | None:
    """Amazon's models: $AMAZON_SP_API_MODELS, else ../shared/vendor/amazon-sp-api beside the
    repository; None where neither exists."""
    configured = os.environ.get("AMAZON_SP_API_MODELS")
    folder = Path(configured) if configured else REPO.parent / "shared/vendor/amazon-sp-api"
    return folder if (folder / "models").is_dir() else None


def install_prism(attempts: int = 3) -> Path:
    """Prism in the project's cache, installed from npm only when missing; a failed install (the
    registry can fail a request now and then) is tried again, and the last one's output told."""
    if PRISM_BIN.exists():
        return PRISM_BIN
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed")
    command = [
        npm,
        "install",
        "--prefix",
        str(PRISM_PREFIX),
        "--no-audit",
        "--no-fund",
        f"@stoplight/prism-cli@{PRISM_VERSION}",
    ]
    for attempt in range(1, attempts + 1):
        done = subprocess.run(command, capture_output=True, timeout=300, check=False)
        if done.returncode == 0 and PRISM_BIN.exists():
            return PRISM_BIN
        if attempt < attempts:
            time.sleep(5 * attempt)
    output = (done.stdout + done.stderr).decode(errors="replace")[-3000:]
    raise RuntimeError(f"npm could not install Prism after {attempts} attempts:\n{output}")


class PrismServers:
    """One `prism mock --errors` per model, each on its own loopback port."""

    def __init__(self, models: Path, ports: dict[str, int], log_dir: Path) -> None:
        self.urls = {prefix: f"http://127.0.0.1:{port}" for prefix, port in ports.items()}
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Any] = []
        binary = install_prism()
        for prefix, port in ports.items():
            log = (log_dir / f"prism-{port}.log").open("wb")
            self.logs.append(log)
            self.processes.append(
                subprocess.Popen(
                    [
                        str(binary),
                        "mock",
                        "--errors",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        str(models / MODELS[prefix]),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for url in self.urls.values():
            while True:
                try:
                    httpx.get(url, timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or any(
                        p.poll() is not None for p in self.processes
                    ):
                        raise RuntimeError("Prism did not start") from None
                    time.sleep(0.2)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for log in self.logs:
            log.close()


@dataclass
class Seen:
    """One request the adapter sent to an SP-API operation, and Prism's verdict."""

    method: str
    path: str
    status: int
    violations: str | None
    body: Any


@dataclass
class AmazonState:
    """What the mock Amazon remembers; reset before every test."""

    base_url: str = ""
    requests: list[Seen] = field(default_factory=list)
    documents: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    feeds: dict[str, str] = field(default_factory=dict)
    """feedId -> its input document id."""
    feed_types: dict[str, str] = field(default_factory=dict)
    """feedId -> its feedType."""
    feed_status: str = "DONE"
    refused_skus: set[str] = field(default_factory=set)
    refused_cancellations: set[str] = field(default_factory=set)
    """Amazon order ids whose seller cancellation the processing report refuses."""
    throttle: dict[str, int] = field(default_factory=dict)
    """Path prefix -> how many more requests Prism is asked to answer 429 (Prefer: code=429)."""
    rate_limits: dict[str, str] = field(default_factory=dict)
    """Path prefix -> the x-amzn-RateLimit-Limit to answer with (Prism's model says 'string')."""
    rewrite_document_urls: bool = True
    damaged_reports: str | None = None
    token_answer: bytes | None = None
    """Served by Login with Amazon as is (status 200) instead of a token, when set."""
    """"truncated" (gzip cut short) or "corrupt" (deflate data that is not): reports served so."""
    tokens_issued: list[str] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def reset(self) -> None:
        base = self.base_url
        self.__init__()  # type: ignore[misc]
        self.base_url = base

    def calls(self, method: str, fragment: str) -> list[Seen]:
        return [r for r in self.requests if r.method == method and fragment in r.path]

    def report_for(self, feed_id: str) -> dict[str, Any]:
        """A processing report of the feed's input document: ERROR issues for refused SKUs."""
        _, content = self.documents[self.feeds[feed_id]]
        messages = json.loads(content)["messages"]
        issues = [
            {
                "messageId": m["messageId"],
                "code": "90220",
                "severity": "ERROR",
                "message": f"'{m['sku']}' is not a listing of this seller",
            }
            for m in messages
            if m["sku"] in self.refused_skus
        ]
        return {
            "header": {"sellerId": "SELLER", "version": "2.0", "feedId": feed_id},
            "issues": issues,
            "summary": {
                "errors": len(issues),
                "warnings": 0,
                "messagesProcessed": len(messages),
                "messagesAccepted": len(messages) - len(issues),
                "messagesInvalid": len(issues),
            },
        }

    def xml_report_for(self, feed_id: str) -> bytes:
        """The XML processing report of an XML feed (order acknowledgements): an Error result
        for each message cancelling an order in refused_cancellations; like Amazon's, it lists
        only the messages with an error or warning."""
        _, content = self.documents[self.feeds[feed_id]]
        messages = defused_fromstring(content).findall("Message")
        envelope = ET.Element("AmazonEnvelope")
        header = ET.SubElement(envelope, "Header")
        ET.SubElement(header, "DocumentVersion").text = "1.02"
        ET.SubElement(header, "MerchantIdentifier").text = "SELLER"
        ET.SubElement(envelope, "MessageType").text = "ProcessingReport"
        message = ET.SubElement(envelope, "Message")
        ET.SubElement(message, "MessageID").text = "1"
        report = ET.SubElement(message, "ProcessingReport")
        ET.SubElement(report, "DocumentTransactionID").text = feed_id
        ET.SubElement(report, "StatusCode").text = "Complete"
        refused = [
            m
            for m in messages
            if m.findtext("OrderAcknowledgement/AmazonOrderID") in self.refused_cancellations
        ]
        summary = ET.SubElement(report, "ProcessingSummary")
        for name, count in (
            ("MessagesProcessed", len(messages)),
            ("MessagesSuccessful", len(messages) - len(refused)),
            ("MessagesWithError", len(refused)),
            ("MessagesWithWarning", 0),
        ):
            ET.SubElement(summary, name).text = str(count)
        for m in refused:
            result = ET.SubElement(report, "Result")
            ET.SubElement(result, "MessageID").text = m.findtext("MessageID")
            ET.SubElement(result, "ResultCode").text = "Error"
            ET.SubElement(result, "ResultMessageCode").text = "99001"
            ET.SubElement(
                result, "ResultDescription"
            ).text = "The order cannot be cancelled: it has shipped"
            info = ET.SubElement(result, "AdditionalInfo")
            ET.SubElement(info, "AmazonOrderID").text = m.findtext(
                "OrderAcknowledgement/AmazonOrderID"
            )
        document: bytes = ET.tostring(envelope, encoding="UTF-8", xml_declaration=True)
        return document


def mock_amazon_app(state: AmazonState, prism: dict[str, str]) -> FastAPI:
    app = FastAPI()

    @app.post("/auth/o2/token")
    async def token(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if (
            form.get("grant_type") != "refresh_token"
            or form.get("client_id") != CLIENT_ID
            or form.get("client_secret") != CLIENT_SECRET
            or form.get("refresh_token") != REFRESH_TOKEN
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if state.token_answer is not None:
            return Response(state.token_answer, media_type="text/html")
        issued = f"Atza|access-{next(state.counter)}"
        state.tokens_issued.append(issued)
        return JSONResponse({"access_token": issued, "token_type": "bearer", "expires_in": 3600})

    @app.put("/documents/{document_id}")
    async def upload(document_id: str, request: Request) -> Response:
        state.documents[document_id] = (
            request.headers.get("content-type", ""),
            await request.body(),
        )
        return Response(status_code=200)

    @app.get("/documents/{document_id}")
    async def download(document_id: str) -> Response:
        feed_id = document_id.removeprefix("report-")
        if feed_id not in state.feeds:
            return Response(status_code=404)
        content_type, _ = state.documents[state.feeds[feed_id]]
        if content_type.startswith("text/xml"):
            report = state.xml_report_for(feed_id)
        else:
            report = json.dumps(state.report_for(feed_id)).encode()
        compressed = gzip.compress(report)
        if state.damaged_reports == "truncated":
            compressed = compressed[: len(compressed) // 2]
        elif state.damaged_reports == "corrupt":
            compressed = compressed[:10] + b"\xff" * 20  # a deflate block of reserved type
        return Response(compressed, media_type="application/octet-stream")

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def sp_api(path: str, request: Request) -> Response:
        path = "/" + path
        prefix = next((p for p in prism if path.startswith(p)), None)
        if prefix is None:
            return JSONResponse({"errors": [{"code": "NotFound"}]}, status_code=404)
        if request.headers.get("x-amz-access-token") not in state.tokens_issued:
            return JSONResponse(
                {"errors": [{"code": "Unauthorized", "message": "Access denied"}]},
                status_code=403,
            )
        headers = {"content-type": request.headers.get("content-type", "application/json")}
        for throttled, left in state.throttle.items():
            if path.startswith(throttled) and left > 0:
                state.throttle[throttled] = left - 1
                headers["prefer"] = "code=429"
        body = await request.body()
        async with httpx.AsyncClient(timeout=30) as upstream:
            answer = await upstream.request(
                request.method,
                prism[prefix] + path,
                params=request.query_params,
                content=body,
                headers=headers,
            )
        violations = answer.headers.get("sl-violations")
        state.requests.append(
            Seen(
                request.method,
                path,
                answer.status_code,
                violations,
                json.loads(body) if body else None,
            )
        )
        payload = answer.json() if answer.content else None
        if answer.status_code < 300 and isinstance(payload, dict):
            payload = _as_amazon_would(state, request.method, path, body, payload)
        forwarded = {
            k.lower(): v
            for k, v in answer.headers.items()
            if k.lower() in ("x-amzn-ratelimit-limit", "x-amzn-requestid", "sl-violations")
        }
        for limited, rate in state.rate_limits.items():
            if path.startswith(limited):
                forwarded["x-amzn-ratelimit-limit"] = rate
        if payload is None:
            return Response(status_code=answer.status_code, headers=forwarded)
        return JSONResponse(payload, status_code=answer.status_code, headers=forwarded)

    return app


def _as_amazon_would(
    state: AmazonState, method: str, path: str, body: bytes, payload: dict[str, Any]
) -> dict[str, Any]:
    """Prism answers from the model's examples or schema; Amazon's answers also carry state
    (its own ids, the document URLs it signed, how far a feed got): add that."""
    base = state.base_url
    if method == "POST" and path == "/feeds/2021-06-30/documents":
        document_id = f"doc-{next(state.counter)}"
        payload["feedDocumentId"] = document_id
        if state.rewrite_document_urls:
            payload["url"] = f"{base}/documents/{document_id}"
    elif method == "POST" and path == "/feeds/2021-06-30/feeds":
        feed_id = f"feed-{next(state.counter)}"
        state.feeds[feed_id] = json.loads(body)["inputFeedDocumentId"]
        state.feed_types[feed_id] = json.loads(body)["feedType"]
        payload["feedId"] = feed_id
    elif method == "GET" and path.startswith("/feeds/2021-06-30/feeds/"):
        feed_id = path.rsplit("/", 1)[-1]
        payload.update(
            feedId=feed_id,
            feedType=state.feed_types.get(feed_id, "JSON_LISTINGS_FEED"),
            processingStatus=state.feed_status,
            resultFeedDocumentId=f"report-{feed_id}",
        )
    elif method == "GET" and path.startswith("/feeds/2021-06-30/documents/"):
        document_id = path.rsplit("/", 1)[-1]
        payload["feedDocumentId"] = document_id
        if state.rewrite_document_urls:
            payload["url"] = f"{base}/documents/{document_id}"
        payload["compressionAlgorithm"] = "GZIP"
    return payload
