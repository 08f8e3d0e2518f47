"""The Amazon channel profile (marketplace, region endpoint, mapping choices) and the Login with
Amazon credentials, read from configuration and the environment, never from the repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

DEFAULT_TOKEN_URL = "https://api.amazon.com/auth/o2/token"  # noqa: S105 - a URL


class AmazonProfile(BaseModel):
    """How the gateway trades on one Amazon marketplace."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str = Field(min_length=1, max_length=64, description="Gateway channel code.")
    marketplace_id: str = Field(min_length=1, max_length=32, description="e.g. ATVPDKIKX0DER.")
    seller_id: str = Field(min_length=1, max_length=64, description="Selling partner id.")
    endpoint: str = Field(
        default="https://sellingpartnerapi-na.amazon.com",
        description="Regional SP-API endpoint (NA, EU or FE).",
    )
    token_url: str = Field(default=DEFAULT_TOKEN_URL, description="Login with Amazon token URL.")
    document_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Hosts (host or host:port) that feed document upload and download URLs may point "
            "at, besides the endpoint's host; nothing else is ever called."
        ),
    )
    listings_via: Literal["patch", "feed"] = Field(
        default="feed",
        description=(
            "Availability and prices as one patchListingsItem per SKU, or batched in a "
            "JSON_LISTINGS_FEED document whose processing report confirms them."
        ),
    )
    product_type: str = Field(default="PRODUCT", min_length=1, description="Listings productType.")
    fulfillment_channel_code: str = Field(default="DEFAULT", min_length=1)
    price_includes_tax: bool = Field(
        default=True, description="Prices go out as value_with_tax (else value_without_tax)."
    )
    carrier_codes: dict[str, str] = Field(
        default_factory=dict,
        description="Gateway carrier code -> Amazon carrierCode (unmapped: carrierName, Other).",
    )
    poll_seconds: int = Field(default=300, ge=30, description="Time between sync rounds.")
    first_pull_lookback_hours: int = Field(
        default=24, ge=1, description="How far back the first order pull looks."
    )
    max_pages_per_round: int = Field(default=10, ge=1, le=1000)
    max_attempts: int = Field(default=5, ge=1, le=20, description="Tries per call on 429/5xx.")
    backoff_base_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=60.0, gt=0)
    timeout_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _urls_are_http(self) -> AmazonProfile:
        for url in (self.endpoint, self.token_url):
            parts = urlsplit(url)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise ValueError(f"not an absolute http(s) URL: {url!r}")
        return self

    def allowed_hosts(self) -> frozenset[str]:
        """Every host:port the adapter may call: endpoint, token URL, document hosts."""
        hosts = {host_of(self.endpoint), host_of(self.token_url)}
        hosts.update(h.lower() if ":" in h else f"{h.lower()}:443" for h in self.document_hosts)
        return frozenset(hosts)


class LwaCredentials(BaseModel):
    """Login with Amazon app credentials and the seller's refresh token."""

    model_config = ConfigDict(frozen=True)

    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    refresh_token: SecretStr


def host_of(url: str) -> str:
    """host:port of a URL, with the scheme's default port when none is given."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{(parts.hostname or '').lower()}:{port}"


def load_amazon_profile(value: str) -> AmazonProfile:
    """A profile from inline JSON or from the path of a JSON file."""
    text = value if value.lstrip().startswith("{") else Path(value).read_text(encoding="utf-8")
    return AmazonProfile.model_validate(json.loads(text))
