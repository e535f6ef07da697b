"""Settings, read once from the environment (prefix ``REDALERT_``) and an optional ``.env`` file.

Every field is documented in the README's settings table; keep the two in step.
"""

import json
import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.labels import check_name
from shared.netpolicy import DEFAULT_DENY, networks
from shared.severity import Severity


def _listed(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def severity_table(value: str) -> dict[str, Severity]:
    """`crit=red_alert, p3=assessing` -> {"crit": RED_ALERT, "p3": ASSESSING} (keys lowercased)."""
    table: dict[str, Severity] = {}
    for pair in _listed(value):
        label, eq, severity = pair.partition("=")
        try:
            table[label.strip().lower()] = Severity(severity.strip())
        except ValueError:
            raise ValueError(
                f"{pair!r}: write label=severity, severity one of "
                f"{', '.join(s.value for s in Severity)}"
            ) from None
        if not eq or not label.strip():
            raise ValueError(f"{pair!r}: write label=severity")
    return table


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
    redis_sentinels: str | None = Field(
        default=None,
        description="host:port,host:port… of Redis Sentinels: the primary is asked of them "
        "(and followed after a failover) instead of REDALERT_REDIS_URL's host.",
    )
    redis_sentinel_master: str = Field(
        default="mymaster", min_length=1, description="The primary's name at the sentinels."
    )
    min_replicas_ack: int = Field(
        default=0,
        ge=0,
        le=10,
        description="Writes that must survive losing the primary wait (WAIT) for this many "
        "replicas: a post is answered 202 only then (503 otherwise).",
    )
    redis_max_connections: int = Field(
        default=128,
        ge=4,
        le=10_000,
        description="Connections a process opens to Redis at most (the console's live pages have "
        "a pool of their own); a command waits (up to 20 s) for a free one rather than failing.",
    )
    namespace: str = Field(
        default="redalert", pattern=r"^[A-Za-z0-9_.\-]+$", description="Prefix of every key."
    )

    # HTTP (ingest).
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="When set, GET /metrics on this port (at REDALERT_HTTP_HOST): for classify "
        "and notify, which have no API; ingest also answers /metrics on its own port.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8080",
        description="Base of links put in notifications; unset: this API at its host and port.",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="An admin token (named `api-token`); once any token exists, every /v1 "
        "request needs one.",
    )
    token_cache_ms: int = Field(
        default=500,
        ge=0,
        le=60_000,
        description="How long a process answers from its copy of the API tokens: a token "
        "revoked through another replica stops working within this; 0: ask Redis every request.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, GET /metrics needs `Authorization: Bearer <token>` (or any API "
        "token); unset, /metrics is open.",
    )
    audit_keep: int = Field(
        default=100_000, ge=100, le=10_000_000, description="Audit trail entries kept (approx.)."
    )
    target_deny: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_DENY),
        description="CIDRs no source, webhook or apprise target may connect to (comma-separated "
        "in the environment); default: link-local and cloud metadata addresses.",
    )
    target_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="When set, the only CIDRs targets may connect to (the deny list still wins).",
    )
    webhook_window_s: int = Field(
        default=300,
        ge=10,
        le=86_400,
        description="Signed inbound webhooks: how far X-Redalert-Timestamp may be from now.",
    )
    max_subscriptions: int = Field(
        default=2_000, ge=1, le=1_000_000, description="At most this many subscriptions."
    )
    max_silences: int = Field(
        default=2_000, ge=1, le=1_000_000, description="At most this many silences (kept ones)."
    )
    max_sources: int = Field(
        default=500, ge=1, le=100_000, description="At most this many sources."
    )
    max_body_bytes: int = Field(default=5_000_000, ge=1024)
    link_secret: SecretStr | None = Field(
        default=None,
        description="Signs the ack/resolve links in notifications; unset: generated per namespace.",
    )
    link_ttl_s: int = Field(
        default=86_400, ge=60, le=30 * 86_400, description="How long such links work (24 h)."
    )

    # Files.
    rules_file: Path = PROJECT_ROOT / "config" / "rules.yaml"
    labelled_dir: Path | None = Field(
        default=PROJECT_ROOT / "tests" / "data",
        description="Labelled posts (*.jsonl) the console's rules workbench evaluates against.",
    )
    rules_reload_s: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="How often classify looks for new rules (in Redis and the rules file).",
    )
    model_file: Path | None = Field(
        default=PROJECT_ROOT / "config" / "model.json",
        description="The severity model (`redalert model train`); missing or bad: rules alone.",
    )
    subscriptions_file: Path | None = None
    sources_file: Path | None = Field(
        default=None, description="YAML sources (feeds, Mastodon, webhooks) applied at start-up."
    )
    data_dir: Path = Path(".redalert")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    shutdown_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="On SIGTERM/SIGINT/SIGHUP: stop taking work, finish or hand back in-flight "
        "work, and exit within this many seconds.",
    )

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
    owner_lease_s: float = Field(
        default=10.0,
        ge=0.3,
        le=600,
        description="classify's ownership lease: a standby replica takes over this long after "
        "the owner dies (at once after a clean stop).",
    )

    # Retention.
    trim_interval_s: float = Field(
        default=1.0, gt=0, description="How often work streams are trimmed below what was acked."
    )
    dedup_ttl_s: int = Field(
        default=7 * 86_400, ge=1, description="How long a post id is remembered."
    )
    retention_days: float = Field(
        default=30,
        gt=0,
        le=36_500,
        description="Resolved incidents, with their posts, timeline and deliveries, are kept "
        "this long, then only their summary in the archive.",
    )
    archive_maxlen: int = Field(
        default=1_000_000, ge=100, description="Approximate cap of the incidents archive."
    )
    audit_maxlen: int = Field(
        default=100_000, ge=100, description="Approximate cap of the classified/deliveries streams."
    )

    # Incidents.
    correlation_window_s: int = Field(
        default=6 * 3600,
        ge=0,
        description="A post without a thread joins an open incident active this recently…",
    )
    similarity: float = Field(
        default=0.25, ge=0, le=1, description="…sharing a topic, when this similar in wording."
    )
    quiet_period_s: int = Field(
        default=6 * 3600, ge=0, description="Silence this long resolves an incident (0: never)."
    )
    reopen_window_s: int = Field(
        default=24 * 3600,
        ge=0,
        description="A new alarm this soon after resolution reopens; later, opens a new incident.",
    )
    pagerduty_secret: SecretStr | None = Field(
        default=None, description="When set, /v1/webhooks/pagerduty requires an HMAC signature."
    )
    alertmanager_secret: SecretStr | None = Field(
        default=None, description="When set, /v1/webhooks/alertmanager requires an HMAC signature."
    )
    grafana_secret: SecretStr | None = Field(
        default=None, description="When set, /v1/webhooks/grafana requires an HMAC signature."
    )
    alertmanager_group_by: str = Field(
        default="",
        description="Label names (comma-separated) whose values group Alertmanager alerts into "
        "one incident; empty: each alert (fingerprint) is its own.",
    )
    alertmanager_severities: str = Field(
        default="",
        description="More `severity` label values, as `crit=red_alert,p3=assessing`; a value "
        "in neither this nor the built-in table is assessing, with a warning on the incident.",
    )

    # Delivery.
    send_timeout_s: float = Field(default=5.0, gt=0, description="One send attempt's limit.")
    send_lease_s: float = Field(
        default=3.0,
        ge=0.5,
        le=300,
        description="Lease on sends in flight, renewed while they run; a dead replica's sends "
        "are taken over this long after it stops renewing.",
    )
    lane_concurrency: int = Field(
        default=8, ge=1, le=1000, description="Sends in flight at once to one target URL."
    )
    lane_queue: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Messages waiting for one target URL; beyond, they wait in Redis.",
    )
    render_timeout_s: float = Field(
        default=0.5, gt=0, le=30, description="One subscription template's rendering limit."
    )
    render_max_chars: int = Field(
        default=20_000, ge=100, le=1_000_000, description="Longest rendered title or body."
    )
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

    # Polling sources (ingest).
    poll_tick_s: float = Field(
        default=1.0, gt=0, description="How often an ingest replica looks for sources due."
    )
    poll_timeout_s: float = Field(default=20.0, gt=0, description="One source request's limit.")
    poll_backoff_s: float = Field(
        default=30.0, gt=0, description="Delay after a source's first failure; doubles."
    )
    poll_backoff_max_s: float = Field(
        default=3600.0, gt=0, description="Longest delay after failures (and Retry-After honoured)."
    )

    @field_validator(
        "redis_url",
        "redis_sentinels",
        "api_token",
        "metrics_token",
        "link_secret",
        "subscriptions_file",
        "sources_file",
        "model_file",
        "pagerduty_secret",
        "alertmanager_secret",
        "grafana_secret",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Compose passes `${VAR:-}` as an empty string: that means "not set", not "empty token".
        return None if value == "" else value

    @field_validator("alertmanager_group_by")
    @classmethod
    def _label_names(cls, value: str) -> str:
        for name in _listed(value):
            if (why := check_name(name)) is not None:
                raise ValueError(why)
        return value

    @field_validator("alertmanager_severities")
    @classmethod
    def _severity_table(cls, value: str) -> str:
        severity_table(value)
        return value

    @property
    def alertmanager_group_labels(self) -> list[str]:
        return _listed(self.alertmanager_group_by)

    @property
    def alertmanager_severity_table(self) -> dict[str, Severity]:
        return severity_table(self.alertmanager_severities)

    @field_validator("target_deny", "target_allow", mode="before")
    @classmethod
    def _cidrs(cls, value: object, info: ValidationInfo) -> object:
        # The environment gives "10.0.0.0/8, 169.254.0.0/16" as well as JSON; "none" is an
        # empty list, and "" (compose's unset variable) the default.
        if isinstance(value, str) and value.strip() == "":
            return list(DEFAULT_DENY) if info.field_name == "target_deny" else []
        if isinstance(value, str) and value.strip().lower() == "none":
            return []
        if isinstance(value, str) and value.strip().startswith("["):
            value = json.loads(value)
        elif isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            for cidr in value:
                try:
                    networks([str(cidr)])
                except ValueError as e:
                    raise ValueError(f"{cidr!r} is not a network (CIDR): {e}") from None
        return value

    @model_validator(mode="after")
    def _public_url_follows_the_port(self) -> "Settings":
        # Unset, links in notifications point at this very API, whatever port it listens on.
        if "public_url" not in self.model_fields_set:
            host = "127.0.0.1" if self.http_host in ("0.0.0.0", "::", "") else self.http_host
            self.public_url = f"http://{host}:{self.http_port}"
        return self

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        out = []
        for item in (self.redis_sentinels or "").split(","):
            host, _, port = item.strip().rpartition(":")
            if item.strip():
                out.append((host.strip("[]") or "127.0.0.1", int(port)))
        return out

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinels(cls, value: str | None) -> str | None:
        for item in (value or "").split(","):
            host, sep, port = item.strip().rpartition(":")
            if item.strip() and not (sep and host and port.isdigit() and 0 < int(port) < 65536):
                raise ValueError(f"{item.strip()!r}: give host:port, separated by commas")
        return value

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or DEFAULT_REDIS_URL


@lru_cache
def get_settings() -> Settings:
    return Settings()
