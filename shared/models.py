"""The contract between the services: every stream entry is one of these models, as JSON."""

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.severity import Severity

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=False)


# --- posts -------------------------------------------------------------------------------------


class Post(Model):
    """One update from a source: a status, a feed item, a webhook call."""

    id: Identifier = Field(default_factory=new_id)
    source: Identifier = "api"
    text: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
    author: str | None = Field(default=None, max_length=200)
    url: str | None = Field(default=None, max_length=2_000)
    thread_id: str | None = Field(default=None, max_length=200)
    in_reply_to: str | None = Field(default=None, max_length=200)
    published_at: datetime | None = None
    received_at: datetime = Field(default_factory=utcnow)
    # Set by sources that already know the answer (PagerDuty, Alertmanager): skips the rules.
    severity: Severity | None = None
    # Set by sources with their own identity for an event (a dedup key, a fingerprint).
    incident_key: str | None = Field(default=None, max_length=200)

    @property
    def key(self) -> str:
        """Identity across sources: ids are only unique within one source."""
        return f"{self.source}:{self.id}"


# --- classification ----------------------------------------------------------------------------


class Hit(Model):
    """One rule that fired on a span of the text."""

    rule: str
    kind: str  # "cue" or a modifier kind (negation, uncertainty, history, all_clear, stand_down)
    text: str
    start: int
    end: int
    severity: Severity | None = None  # cues only
    weight: float = 0.0
    # What happened to a cue: counted, or cancelled/downgraded by a modifier (with its rule id).
    effect: Literal["counted", "negated", "hedged", "historical", "ignored"] = "counted"
    by: str | None = None


class Classification(Model):
    post: Post
    severity: Severity
    scores: dict[str, float] = Field(default_factory=dict)
    topics: list[str] = Field(default_factory=list)
    all_clear: bool = False  # explicit reassurance: lowers an incident's severity
    stand_down: bool = False  # explicit stand-down: resolves the incident
    trust: float = 1.0
    hits: list[Hit] = Field(default_factory=list)
    rules_version: str = ""
    incident_id: str | None = None
    classified_at: datetime = Field(default_factory=utcnow)


# --- incidents ---------------------------------------------------------------------------------


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Incident(Model):
    id: str
    title: str
    status: IncidentStatus = IncidentStatus.OPEN
    severity: Severity
    peak_severity: Severity
    topics: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    opened_at: datetime
    updated_at: datetime
    last_post_at: datetime | None = None
    resolved_at: datetime | None = None
    acknowledged_by: str | None = None
    post_count: int = 0
    # Trust of the post that set the current severity; de-escalation weighs against it.
    severity_trust: float = 1.0
    # Salient words of its posts: a post without a thread joins when its wording is similar.
    terms: list[str] = Field(default_factory=list)
    version: int = 0

    @property
    def is_open(self) -> bool:
        return self.status is not IncidentStatus.RESOLVED


class EventKind(StrEnum):
    OPENED = "opened"
    ESCALATED = "escalated"
    DE_ESCALATED = "de_escalated"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    REOPENED = "reopened"


class CommandAction(StrEnum):
    ACK = "ack"
    RESOLVE = "resolve"
    REOPEN = "reopen"


class IncidentCommand(Model):
    """A person's (or another tool's) decision about an incident.

    Names the incident by id, or — for tools with their own identity for an event, like
    PagerDuty's dedup_key or Alertmanager's fingerprint — by `source` and `incident_key`.
    """

    id: str = Field(default_factory=new_id)
    incident_id: Identifier | None = None
    source: str | None = Field(default=None, max_length=200)
    incident_key: str | None = Field(default=None, max_length=200)
    action: CommandAction
    actor: Annotated[str, StringConstraints(min_length=1, max_length=200)] = "anonymous"
    note: str | None = Field(default=None, max_length=2_000)
    via: str = "api"  # api, link, cli, pagerduty, alertmanager…
    at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _names_an_incident(self) -> "IncidentCommand":
        if self.incident_id is None and not (self.source and self.incident_key):
            raise ValueError("give incident_id, or source and incident_key")
        return self


class IncidentEvent(Model):
    """One transition of an incident, with the snapshot after it and what caused it."""

    id: str  # "<incident id>:<version>": the same transition always has the same id
    kind: EventKind
    incident: Incident
    previous_severity: Severity | None = None
    previous_status: IncidentStatus | None = None
    reason: str
    post: Post | None = None
    post_severity: Severity | None = None
    command: IncidentCommand | None = None
    at: datetime = Field(default_factory=utcnow)


# --- subscriptions and deliveries -------------------------------------------------------------


class Subscription(Model):
    id: str = Field(default_factory=new_id)
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
    urls: list[str] = Field(default_factory=list)
    min_severity: Severity = Severity.ASSESSING
    send_resolved: bool = True
    origin: Literal["api", "file"] = "api"
    created_at: datetime = Field(default_factory=utcnow)


class DeliveryOutcome(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    DEADLETTERED = "deadlettered"


class Delivery(Model):
    """One attempt to tell one subscription's URL about one incident event. URLs are masked."""

    event_id: str
    incident_id: str
    subscription_id: str
    subscription_name: str
    url: str
    outcome: DeliveryOutcome
    attempt: int
    latency_ms: float
    title: str
    notify_type: str
    error: str | None = None
    at: datetime = Field(default_factory=utcnow)


class DeadLetter(Model):
    """An entry that could not be processed, with enough to look at it and replay it."""

    id: str = Field(default_factory=new_id)
    stream: str  # the stream it came from (without namespace)
    group: str | None = None
    entry_id: str | None = None
    fields: dict[str, str]
    error: str
    attempts: int = 1
    at: datetime = Field(default_factory=utcnow)
    extra: dict[str, Any] = Field(default_factory=dict)
