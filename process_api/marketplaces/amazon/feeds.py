"""Feeds API 2021-06-30, shared by the listings and cancellation feeds: a document created,
uploaded and submitted as a feed; a submitted feed's processing status and, once DONE, its
processing report."""

from __future__ import annotations

from dataclasses import dataclass

from process_api.marketplaces.amazon.http import SpApiClient

FEEDS = "/feeds/2021-06-30"
WAITING = frozenset({"IN_QUEUE", "IN_PROGRESS"})


@dataclass(frozen=True)
class Submitted:
    feed_id: str
    document_id: str


@dataclass(frozen=True)
class Outcome:
    status: str
    """Amazon's processingStatus."""
    report: bytes | None = None
    """The processing report (decompressed), once the feed is DONE."""

    @property
    def waiting(self) -> bool:
        return self.status in WAITING


async def submit_feed(
    client: SpApiClient,
    *,
    feed_type: str,
    content_type: str,
    content: bytes,
    marketplace_id: str,
) -> Submitted:
    """createFeedDocument, upload to the URL Amazon signed (allow-listed), createFeed.
    AmazonError when a step fails for good; nothing is submitted then."""
    created = (
        await client.call(
            "createFeedDocument",
            "POST",
            f"{FEEDS}/documents",
            json={"contentType": content_type},
            expect=(201,),
        )
    ).json()
    document_id = str(created["feedDocumentId"])
    await client.upload_document(str(created["url"]), content, content_type)
    feed = (
        await client.call(
            "createFeed",
            "POST",
            f"{FEEDS}/feeds",
            json={
                "feedType": feed_type,
                "marketplaceIds": [marketplace_id],
                "inputFeedDocumentId": document_id,
            },
            expect=(202,),
        )
    ).json()
    return Submitted(str(feed["feedId"]), document_id)


async def feed_outcome(client: SpApiClient, feed_id: str) -> Outcome:
    """Where the feed is; with its processing report once DONE. UnreadableDocument when the
    report cannot be decompressed, AmazonError when a call fails for good; KeyError or
    ValueError when Amazon's answer is unreadable."""
    status = (await client.call("getFeed", "GET", f"{FEEDS}/feeds/{feed_id}")).json()
    state = str(status.get("processingStatus"))
    if state != "DONE":
        return Outcome(state)
    result = (
        await client.call(
            "getFeedDocument", "GET", f"{FEEDS}/documents/{status['resultFeedDocumentId']}"
        )
    ).json()
    content = await client.download_document(str(result["url"]), result.get("compressionAlgorithm"))
    return Outcome(state, content)
