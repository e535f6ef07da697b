"""Settings, read once from the environment (prefix ``REDALERT_``) and an optional ``.env`` file.

Every field is documented in the README's settings table; keep the two in step.
"""

import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _default_consumer_name() -> str:
    # Unique per process: replicas sharing a name would steal each other's pending entries.
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REDALERT_", env_file=".env", extra="ignore", validate_default=True
    )

    # Where and under which prefix everything lives.
    redis_url: str | None = Field(
        default=None,
        description="Redis URL. Unset: redis://127.0.0.1:6379/0 (and `redalert up` starts an "
        "embedded server when nothing answers there).",
    )
    namespace: str = Field(
        default="redalert", pattern=r"^[A-Za-z0-9_.\-]+$", description="Prefix of every key."
    )

    # HTTP (ingest).
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    public_url: str = Field(
        default="http://127.0.0.1:8080", description="Base of links put in notifications."
    )
    api_token: SecretStr | None = Field(
        default=None, description="When set, every write API needs `Authorization: Bearer <token>`."
    )
    max_body_bytes: int = Field(default=5_000_000, ge=1024)
    link_secret: SecretStr | None = Field(
        default=None,
        description="Signs the ack/resolve links in notifications; unset: generated per namespace.",
    )
    link_ttl_s: int = Field(default=7 * 86_400, ge=60, description="How long such links work.")

    # Files.
    rules_file: Path = PROJECT_ROOT / "config" / "rules.yaml"
    subscriptions_file: Path | None = None
    data_dir: Path = Path(".redalert")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Consumers.
    consumer_name: str = Field(default_factory=_default_consumer_name)
    batch_size: int = Field(default=256, ge=1, le=10_000)
    block_ms: int = Field(default=100, ge=1, description="XREADGROUP block time.")
    reclaim_idle_ms: int = Field(
        default=30_000, ge=100, description="Pending entries idle this long are reclaimed."
    )
    max_deliveries: int = Field(
        default=5, ge=1, description="Deliveries of one stream entry before it is dead-lettered."
    )

    # Retention.
    dedup_ttl_s: int = Field(
        default=7 * 86_400, ge=60, description="How long a post id is remembered."
    )
    audit_maxlen: int = Field(
        default=100_000, ge=100, description="Approximate cap of the classified/deliveries streams."
    )

    # Delivery.
    send_timeout_s: float = Field(default=15.0, gt=0)
    send_attempts: int = Field(
        default=3, ge=1, description="Attempts per URL before dead-lettering."
    )
    send_backoff_s: float = Field(default=0.5, ge=0, description="First retry delay; doubles.")
    send_concurrency: int = Field(
        default=64, ge=1, description="Sends in flight at once (also apprise's thread pool size)."
    )
    circuit_failures: int = Field(
        default=5, ge=1, description="Failed deliveries in a row that open a URL's circuit."
    )
    circuit_open_s: float = Field(
        default=300.0, gt=0, description="How long an open circuit skips its URL."
    )
    schedule_poll_s: float = Field(
        default=1.0, gt=0, description="How often notify looks for due rechecks, repeats, digests."
    )

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or DEFAULT_REDIS_URL


@lru_cache
def get_settings() -> Settings:
    return Settings()
