"""Gateway settings, from the environment (prefix GATEWAY_, plus DATABASE_URL and REDIS_URL)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import AliasChoices, Field, HttpUrl, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    system_api_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Timeout of one HTTP call to system_api."
    )

    erp_price_tolerance: Decimal = Field(
        default=Decimal("0.01"),
        ge=0,
        description="Largest difference between an order line price and the ERP price list.",
    )

    scheduler_enabled: bool = Field(
        default=True, description="Run the durable scheduler in this process (timers, retries)."
    )
    scheduler_poll_seconds: float = Field(
        default=1.0, gt=0, description="Pause between scheduler rounds when nothing was due."
    )
    scheduler_lease_seconds: float = Field(
        default=60.0, gt=0, description="How long a claimed timer is reserved for its process."
    )

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
        default = "(none)" if field.default is None else f"`{field.default}`"
        lines.append(f"| `{environment_variable(name)}` | {default} | {field.description} |")
    return "\n".join(lines) + "\n"
