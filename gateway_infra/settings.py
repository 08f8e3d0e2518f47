"""Gateway settings, from the environment (prefix GATEWAY_, plus DATABASE_URL and REDIS_URL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway_infra.networks import parse_networks


class ThrottleTier(BaseModel):
    """Request limits of one tier: a burst per short window and a sustained rate per minute."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    burst: int = Field(ge=1, description="Requests allowed per burst window.")
    burst_window_seconds: int = Field(default=1, ge=1)
    sustained: int = Field(ge=1, description="Requests allowed per sustained window.")
    sustained_window_seconds: int = Field(default=60, ge=1)


DEFAULT_THROTTLE_TIERS = {
    "standard": ThrottleTier(burst=10, sustained=600),
    "premium": ThrottleTier(burst=50, sustained=3000),
    "internal": ThrottleTier(burst=200, sustained=12000),
}


class Settings(BaseSettings):
    """Every setting of the gateway, with safe embedded defaults (docs/settings.md lists them)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    database_url: str = Field(
        default="sqlite:///./var/gateway.db",
        validation_alias=AliasChoices("DATABASE_URL", "GATEWAY_DATABASE_URL"),
        description="SQLAlchemy URL of the gateway's own store: sqlite:///path or postgresql://...",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "GATEWAY_REDIS_URL"),
        description="Redis for shared throttling counters; in-process memory when unset.",
    )
    public_base_url: HttpUrl = Field(
        default=HttpUrl("http://127.0.0.1:8000"),
        description="Base URL clients use to reach the gateway; the OAuth2 issuer.",
    )
    host: str = Field(default="127.0.0.1", description="Address `serve` listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `serve` listens on.")
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes.")
    forwarded_allow_ips: str | None = Field(
        default=None,
        description=(
            "Proxies (comma-separated IPs or networks) trusted for X-Forwarded-For/-Proto, so "
            "per-IP limits see the client's address behind a load balancer; unset: none."
        ),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level of log lines written."
    )
    log_json: bool = Field(default=True, description="One JSON object per log line (else text).")

    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Larger bodies get 413.")
    db_busy_timeout_ms: int = Field(
        default=5000, ge=0, description="How long SQLite waits for another process's write lock."
    )
    db_pool_size: int = Field(
        default=10, ge=1, description="Database connections (and worker threads) per process."
    )

    system_api_transport: Literal["in_process", "http"] = Field(
        default="in_process",
        description="How process_api reaches system_api: a direct call or HTTP.",
    )
    system_api_url: str = Field(
        default="http://127.0.0.1:8000/system",
        description="Base URL of system_api when system_api_transport is http.",
    )
    system_api_client_id: str | None = Field(
        default=None, description="Internal client the process layer uses to call system_api."
    )
    system_api_client_secret: SecretStr | None = Field(
        default=None, description="Secret of system_api_client_id."
    )
    system_api_token_url: str | None = Field(
        default=None, description="Token endpoint for that client (default: this gateway's)."
    )
    system_api_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Timeout of one HTTP call to system_api."
    )
    system_api_breaker_failures: int = Field(
        default=5,
        ge=1,
        description="Consecutive failed calls to system_api that open its circuit breaker.",
    )
    system_api_breaker_reset_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How long an open system_api breaker fails calls at once before a trial call.",
    )

    system_backend: Literal["embedded", "tryton"] = Field(
        default="embedded",
        description=(
            "The ERP and WMS behind the system API: the embedded reference backend in the "
            "gateway's own database, or a Tryton server over JSON-RPC (one gateway process per "
            "Tryton database: Tryton does not enforce unique references)."
        ),
    )
    tryton_url: str = Field(
        default="http://127.0.0.1:8000", description="Base URL of the Tryton server."
    )
    tryton_database: str = Field(default="tryton", description="Tryton database name.")
    tryton_user: str = Field(default="admin", description="Tryton user the gateway logs in as.")
    tryton_password: SecretStr | None = Field(default=None, description="That user's password.")
    tryton_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one Tryton call."
    )
    tryton_attempts: int = Field(
        default=3, ge=1, le=10, description="Tries of an idempotent Tryton call (with backoff)."
    )
    tryton_max_concurrency: int = Field(
        default=4, ge=1, le=64, description="Tryton calls in flight at once, at most."
    )
    tryton_calls_per_second: float = Field(
        default=20.0, gt=0, description="Tryton calls started per second, at most."
    )
    tryton_breaker_failures: int = Field(
        default=5, ge=1, description="Consecutive failed calls that open the circuit breaker."
    )
    tryton_breaker_reset_seconds: float = Field(
        default=30.0, gt=0, description="How long the breaker stays open before a trial call."
    )
    system_of_record: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Overrides of the system-of-record map, JSON {'object.field' or 'object.*': "
            "'erp'|'wms'|'gateway'|'marketplace'}; see docs/system-of-record.md. Checked at start."
        ),
    )
    channel_profiles: str | None = Field(
        default=None,
        description=(
            "Channel profiles created at start-up when their channel has none yet: a JSON array "
            "of profiles, or the path of a file holding one (docs/channel-profiles.md). Checked "
            "at start; a profile that exists (e.g. changed through the API) is never overwritten."
        ),
    )
    exception_routing: str | None = Field(
        default=None,
        description=(
            "Rules routing exceptions to an owner team, with a severity and an SLA: a JSON array "
            "of {workflow, channel, code, min_money_at_risk -> owner_team, severity, sla}, or the "
            "path of a file holding one (docs/exceptions.md). First match wins; otherwise the "
            "team 'operations' and the workflow's SLA. Checked at start."
        ),
    )
    exception_escalation_seconds: int = Field(
        default=60,
        ge=1,
        description=(
            "Interval of the SLA check: unresolved exceptions past their due time escalate "
            "(severity raised, exception.escalated emitted, due again one SLA later)."
        ),
    )
    erp_price_tolerance: Decimal = Field(
        default=Decimal("0.01"),
        ge=0,
        description="Largest difference between an order line price and the ERP price list.",
    )

    request_timeout_seconds: float = Field(
        default=15.0, gt=0, description="A request still unanswered after this gets 504."
    )

    key_encryption_key: SecretStr | None = Field(
        default=None,
        description=(
            "Secret (any string, 32+ characters) that encrypts signing keys and webhook secrets at "
            "rest; replicas must share it. Unset on SQLite: generated into var/ on first use."
        ),
    )
    access_token_lifetime_seconds: int = Field(
        default=900, ge=60, le=86400, description="Lifetime of issued access tokens."
    )
    token_leeway_seconds: int = Field(
        default=10, ge=0, le=300, description="Clock skew tolerated on exp/nbf/iat."
    )
    signing_alg: Literal["ES256", "RS256"] = Field(
        default="ES256", description="Algorithm of new signing keys."
    )
    signing_key_grace_seconds: int = Field(
        default=3600, ge=60, description="How long a retired signing key stays in the JWKS."
    )
    client_status_cache_seconds: float = Field(
        default=1.0, ge=0, le=1.0, description="How long a client's enabled state is cached."
    )

    throttle_tiers: dict[str, ThrottleTier] = Field(
        default_factory=lambda: dict(DEFAULT_THROTTLE_TIERS),
        description="Request limits per throttling tier (JSON); partner clients name their tier.",
    )
    token_endpoint_throttle: ThrottleTier = Field(
        default=ThrottleTier(burst=10, sustained=120),
        description="Request limits of POST /oauth/token per client IP address.",
    )

    idempotency_retention_seconds: int = Field(
        default=86400, ge=60, description="How long an Idempotency-Key and its response are kept."
    )
    event_retention_days: int = Field(
        default=30,
        ge=1,
        description=(
            "How long events are kept (the event feed, webhook re-sends, order journeys). Older "
            "events are purged every hour once relayed to webhooks, except those of pending or "
            "dead deliveries; a feed cursor older than the purged events answers 410."
        ),
    )
    idempotency_lease_seconds: float = Field(
        default=30.0, gt=0, description="How long a key stays in flight before a retry may take it."
    )

    partner_v1_deprecation: datetime | None = Field(
        default=datetime(2026, 11, 1, tzinfo=UTC),
        description="When /partner/v1 was deprecated (Deprecation header); unset: not deprecated.",
    )
    partner_v1_sunset: datetime | None = Field(
        default=datetime(2027, 6, 30, tzinfo=UTC),
        description="When /partner/v1 will stop answering (Sunset header).",
    )
    partner_v1_migration_url: str = Field(
        default="/partner/migration/v1-to-v2",
        description="Link of rel=deprecation and rel=sunset: the v1 to v2 migration note.",
    )

    scheduler_enabled: bool = Field(
        default=True, description="Run the durable scheduler in this process (timers, retries)."
    )
    outbox_sequencer_poll_seconds: float = Field(
        default=0.2,
        gt=0,
        le=60,
        description="Pause of the outbox sequencer between rounds when no event was waiting.",
    )
    scheduler_poll_seconds: float = Field(
        default=1.0, gt=0, description="Pause between scheduler rounds when nothing was due."
    )
    availability_read_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description=(
            "How long a partner's availability answer may be reused for the same channel and "
            "SKU, at most. A write of this process makes it be read again at once; this bounds "
            "how long a change made by another replica stays unseen. 0 reads every time."
        ),
    )
    availability_sweep_seconds: int = Field(
        default=900,
        ge=60,
        description=(
            "Interval of the full availability sweep: expired reservations released and every "
            "channel's availability compared with what it was last sent."
        ),
    )
    scheduler_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description=(
            "How long a claimed timer is reserved for its process; renewed every third of it "
            "while the timer's handler runs, so only a stopped process loses it."
        ),
    )

    webhooks_enabled: bool = Field(
        default=True,
        description="Run the webhook relay and sender in this process (docs/webhooks.md).",
    )
    webhook_allow_loopback: bool = Field(
        default=False,
        description=(
            "Allow webhook URLs on loopback addresses (and plain http to them): for tests and "
            "local use only. Private, link-local, multicast and reserved addresses are always "
            "refused."
        ),
    )
    webhook_max_attempts: int = Field(
        default=15, ge=1, le=100, description="Attempts of one webhook delivery before it is dead."
    )
    webhook_retry_base_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Delay after a delivery's first failed attempt; doubles each time (jittered).",
    )
    webhook_retry_max_delay_seconds: float = Field(
        default=7200.0, gt=0, description="Longest delay between two attempts of a delivery."
    )
    webhook_max_age_seconds: int = Field(
        default=86400,
        ge=60,
        description="A delivery still failing this long after its first attempt is dead.",
    )
    webhook_disable_after_seconds: int = Field(
        default=259200,
        ge=60,
        description=(
            "An endpoint whose every attempt has failed for this long is disabled and an "
            "exception is opened."
        ),
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="Longest one webhook call may take, all included."
    )
    webhook_max_response_bytes: int = Field(
        default=65536, ge=0, description="Bytes of a webhook response read; the rest is cut."
    )
    webhook_max_in_flight_per_endpoint: int = Field(
        default=4, ge=1, le=64, description="Webhook calls in flight to one endpoint at once."
    )
    webhook_sender_concurrency: int = Field(
        default=32, ge=1, le=1024, description="Webhook calls in flight per process at once."
    )
    webhook_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description=(
            "How long a claimed delivery is reserved for its process; after a crash another "
            "process sends it once this has passed. Longer than webhook_timeout_seconds."
        ),
    )
    webhook_secret_overlap_seconds: int = Field(
        default=86400,
        ge=0,
        le=604800,
        description="Default time a rotated webhook secret keeps signing beside the new one.",
    )
    webhook_poll_seconds: float = Field(
        default=0.5, gt=0, description="Pause of the webhook relay and sender when idle."
    )

    amazon_profile: str | None = Field(
        default=None,
        description=(
            "The Amazon channel profile (marketplace id, seller id, region endpoint, allowed "
            "document hosts, patch or feed, poll interval): JSON, or the path of a JSON file "
            "(docs/amazon.md). Unset: no Amazon adapter runs."
        ),
    )
    amazon_lwa_client_id: str | None = Field(
        default=None, description="Login with Amazon client id of the SP-API app."
    )
    amazon_lwa_client_secret: SecretStr | None = Field(
        default=None, description="Login with Amazon client secret (environment only)."
    )
    amazon_lwa_refresh_token: SecretStr | None = Field(
        default=None, description="The seller's SP-API refresh token (environment only)."
    )

    ops_cookie_secure: bool = Field(
        default=True,
        description=(
            "Mark the ops console's session cookie Secure (sent over HTTPS only). Set false only "
            "for local development over plain http on a host other than localhost."
        ),
    )
    ops_session_seconds: int = Field(
        default=28800,
        ge=300,
        le=604800,
        description="How long an ops console sign-in lasts before the operator signs in again.",
    )
    ops_sign_in_throttle: ThrottleTier = Field(
        default=ThrottleTier(
            burst=5, burst_window_seconds=60, sustained=20, sustained_window_seconds=3600
        ),
        description=(
            "Failed sign-ins to the ops console allowed per username from one client address."
        ),
    )
    ops_sign_in_wide_throttle: ThrottleTier = Field(
        default=ThrottleTier(
            burst=20, burst_window_seconds=300, sustained=100, sustained_window_seconds=3600
        ),
        description=(
            "Failed sign-ins to the ops console allowed per username from any address, and per "
            "client address for any username: the looser caps against guessing from many "
            "addresses or many usernames."
        ),
    )

    personal_data_retention: timedelta = Field(
        default=timedelta(days=90),
        ge=timedelta(days=1),
        description=(
            "How long buyers' personal data (names, addresses, phones, e-mails) is kept after an "
            "order closed (settled, cancelled or rejected); then `purge-personal-data` (and the "
            "scheduler) removes it. ISO 8601 duration (P90D) or seconds."
        ),
    )
    personal_data_purge_seconds: int = Field(
        default=86400,
        ge=60,
        description="Interval at which the scheduler purges personal data past its retention.",
    )
    otel_exporter: Literal["otlp", "console"] | None = Field(
        default=None,
        description=(
            "OpenTelemetry span exporter (needs the `tracing` extra); unset: no spans recorded. "
            "otlp reads the standard OTEL_EXPORTER_OTLP_* variables (endpoint, headers)."
        ),
    )
    otel_service_name: str = Field(
        default="retail-sync-gateway", min_length=1, description="service.name of the spans."
    )

    metrics_enabled: bool = Field(
        default=True, description="Serve Prometheus metrics at /metrics (docs/metrics.md)."
    )
    metrics_allowed_networks: str | None = Field(
        default=None,
        description=(
            "Client addresses (comma-separated networks) /metrics answers; others get 403. "
            "Unset: loopback only (127.0.0.0/8, ::1), or loopback and private networks when "
            "metrics_bearer_token is set."
        ),
    )
    metrics_bearer_token: SecretStr | None = Field(
        default=None,
        description=(
            "When set, /metrics also needs `Authorization: Bearer <token>` (401 without it), "
            "from an allowed network."
        ),
    )
    metrics_multiproc_dir: str | None = Field(
        default=None,
        description=(
            "Directory the worker processes of `serve --workers N` (N > 1) share their metrics "
            "in; emptied of its *.db files at start. Unset: a fresh temporary directory, removed "
            "when `serve` stops."
        ),
    )
    sla_monitors: str | None = Field(
        default=None,
        description=(
            "SLA monitor rules: a JSON array of {workflow, channel, within, enabled}, or the path "
            "of a file holding one (docs/metrics.md). Unset: every monitor on every channel with "
            "its default time. Checked at start."
        ),
    )
    sla_check_seconds: int = Field(
        default=60,
        ge=1,
        description="Interval of the SLA monitor check (a breach opens an exception).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if "standard" not in self.throttle_tiers:
            raise ValueError("throttle_tiers needs a 'standard' tier (the default of new clients)")
        if self.signing_key_grace_seconds < (
            self.access_token_lifetime_seconds + self.token_leeway_seconds
        ):
            raise ValueError(
                "signing_key_grace_seconds must cover access_token_lifetime_seconds plus the "
                "leeway, or tokens signed by a retired key stop verifying before they expire"
            )
        if self.idempotency_lease_seconds <= self.request_timeout_seconds:
            raise ValueError(
                "idempotency_lease_seconds must be longer than request_timeout_seconds, or a "
                "retry could take over a key whose first request is still running"
            )
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError(
                "webhook_lease_seconds must be longer than webhook_timeout_seconds, or another "
                "process could send a delivery whose attempt is still running"
            )
        if self.amazon_profile and not (
            self.amazon_lwa_client_id
            and self.amazon_lwa_client_secret
            and self.amazon_lwa_refresh_token
        ):
            raise ValueError(
                "amazon_profile needs amazon_lwa_client_id, amazon_lwa_client_secret and "
                "amazon_lwa_refresh_token"
            )
        try:
            parse_networks(self.metrics_allowed_networks or "")
        except ValueError as exc:
            raise ValueError(f"metrics_allowed_networks: {exc}") from exc
        return self

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("database_url must be a sqlite:// or postgresql:// URL")
        return value


def environment_variable(field_name: str) -> str:
    """The environment variable a setting is read from (its first alias, else GATEWAY_<NAME>)."""
    alias = Settings.model_fields[field_name].validation_alias
    if isinstance(alias, AliasChoices):
        first = alias.choices[0]
        assert isinstance(first, str)
        return first
    return "GATEWAY_" + field_name.upper()


def settings_reference() -> str:
    """docs/settings.md: each setting with its variable, default and meaning (a test keeps it)."""
    lines = [
        "# Settings reference",
        "",
        "Every setting is read from the environment when a gateway process starts. This file is",
        "generated from `gateway_infra/settings.py` (`retail-gateway settings --markdown`); a test",
        "fails when the two differ.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        value = field.get_default(call_default_factory=True)
        if isinstance(value, BaseModel):
            value = value.model_dump()
        elif isinstance(value, dict):
            value = {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in value.items()}
        default = "(none)" if value is None else f"`{json.dumps(value, default=str)}`"
        lines.append(f"| `{environment_variable(name)}` | {default} | {field.description} |")
    return "\n".join(lines) + "\n"
