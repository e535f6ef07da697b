"""The contract between the services: every stream entry is one of these models, as JSON."""

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from shared.labels import Labels
from shared.matchers import MatcherList
from shared.severity import Severity

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=False)


# --- posts -------------------------------------------------------------------------------------

HintKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]
HintValue = Annotated[str, StringConstraints(max_length=200)]


class SourceHint(Model):
    """A structured source's own words about how serious a post is, as it said them: a status
    page's `status` and `impact`, a CAP message's `severity`, `certainty` and `urgency`…

    Kept raw: classify maps them to a severity through the rules file's `hints` table for the
    `scheme`, so changing the mapping is editing that file, not the source.
    """

    scheme: HintKey  # statuspage, cap, grafana, json: which table in the rules file maps it
    values: dict[HintKey, HintValue] = Field(max_length=20)


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
    # What the post is about, as name -> value (`team=db`): matchers route and silence by them.
    labels: Labels = Field(default_factory=dict)
    # What a source could not make sense of (an unknown severity label): shown on the incident.
    warnings: list[Annotated[str, StringConstraints(max_length=500)]] = Field(
        default_factory=list, max_length=10
    )
    # Set by structured sources (status pages, CAP, Grafana, mapped JSON): a severity the rules
    # file maps, which outranks the text's cue words (see Classification.hint).
    hint: SourceHint | None = None

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


class HintVerdict(Model):
    """What a post's SourceHint said, what the rules file made of it, and what the text said.

    The hint wins: a structured source's own word outranks cue words. A text that reads
    otherwise is kept here as a `disagreement`, shown in the explanation, never dropped.
    """

    scheme: str
    says: dict[str, str]
    rule: str  # the row of the rules file that matched: "hints.statuspage[2]"
    matched: bool = True  # False: no row matched, and the text decided
    severity: Severity
    effect: Literal["resolve", "all_clear"] | None = None
    text_severity: Severity  # what the text alone would have given
    text_all_clear: bool = False
    disagreement: str | None = None


class ModelOpinion(Model):
    """The severity model's second opinion on a post the rules were unsure about."""

    version: str  # of the model file (a digest of it, as a rules version)
    severity: Severity  # the model's own answer
    probabilities: dict[str, float] = Field(default_factory=dict)
    words: list[tuple[str, float]] = Field(default_factory=list)  # what weighed most for it
    unsure: str = ""  # why the rules were unsure: why the model was asked
    confidence: float = 0.0  # how sure the model had to be to decide
    rules_severity: Severity | None = None  # what the rules alone said
    decided: bool = False  # the model's answer is the classification's severity


class Classification(Model):
    post: Post
    severity: Severity
    scores: dict[str, float] = Field(default_factory=dict)
    topics: list[str] = Field(default_factory=list)
    all_clear: bool = False  # explicit reassurance: lowers an incident's severity
    stand_down: bool = False  # explicit stand-down: resolves the incident
    trust: float = 1.0
    hits: list[Hit] = Field(default_factory=list)
    hint: HintVerdict | None = None  # the post carried a source's own severity hint
    rules_version: str = ""
    model: ModelOpinion | None = None  # asked only where the rules were unsure
    incident_id: str | None = None
    classified_at: datetime = Field(default_factory=utcnow)


# --- incidents ---------------------------------------------------------------------------------


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


MAX_WARNINGS = 20


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
    # Names of places and things, and identifying numbers, its posts used (terms.names): a post
    # naming another place or object does not join on shared words.
    names: list[str] = Field(default_factory=list)
    # The union of its posts' labels; a label's first value stays (shared/labels.union).
    labels: Labels = Field(default_factory=dict)
    # Its posts' warnings (shared.models.Post.warnings), each once, the first MAX_WARNINGS.
    warnings: list[str] = Field(default_factory=list)
    # Its subjects (status-page components, CAP areas) and the last status said of each:
    # an all-clear about some of them does not clear it while others are affected.
    subjects: dict[str, str] = Field(default_factory=dict)
    version: int = 0

    @property
    def is_open(self) -> bool:
        return self.status is not IncidentStatus.RESOLVED


class ArchivedIncident(Model):
    """What stays of an incident once its retention is over: a line in the archive."""

    id: str
    title: str
    severity: Severity  # its peak
    topics: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    labels: Labels = Field(default_factory=dict)
    opened_at: datetime
    resolved_at: datetime | None = None
    acknowledged_by: str | None = None
    post_count: int = 0
    archived_at: datetime = Field(default_factory=utcnow)

    @classmethod
    def of(cls, incident: "Incident") -> "ArchivedIncident":
        return cls(
            id=incident.id,
            title=incident.title,
            severity=incident.peak_severity,
            topics=incident.topics,
            sources=incident.sources,
            labels=incident.labels,
            opened_at=incident.opened_at,
            resolved_at=incident.resolved_at,
            acknowledged_by=incident.acknowledged_by,
            post_count=incident.post_count,
        )


class EventKind(StrEnum):
    OPENED = "opened"
    ESCALATED = "escalated"
    DE_ESCALATED = "de_escalated"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    WIDENED = "widened"  # a joining post added a source, topic or label: new subscribers may match


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
    # Who acted: a token's name (or, with no token in use, the name the client gave).
    actor: Annotated[str, StringConstraints(min_length=1, max_length=200)] = "anonymous"
    claimed: str | None = Field(default=None, max_length=200)  # a name given beside the token
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

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$", re.I)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_duration(value: Any) -> Any:
    """`90`, `"90s"`, `"15m"`, `"2h"`, `"1d"` -> seconds; anything else is left to fail."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise ValueError(f"{value!r} is not a duration (like 90s, 15m, 2h or 1d)")
        return float(m.group(1)) * _UNIT_S[(m.group(2) or "s").lower()]
    return value


# A duration in seconds, written as a number or `90s`, `15m`, `2h`, `1d`.
# At most ten years: a longer one is a typo (or an attack: 1e300 seconds overflows a date).
MAX_SECONDS = 10 * 366 * 86_400
Seconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0, le=MAX_SECONDS)]
# A subscription's durations: bounded when it is saved, with messages naming the field
# (shared/subscriptions.py), but not when read back, so one saved before the bounds existed still
# loads — notify dead-letters that subscription's deliveries alone instead of failing everyone's.
SubscriptionSeconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]

_CLOCK_RANGE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?-(\d{1,2}):(\d{2})(?::(\d{2}))?$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def weekdays(days: list[str]) -> list[str]:
    """`["Monday", "tue"]` -> `["mon", "tue"]`; an unknown day is an error naming it."""
    days = [d.strip().lower()[:3] for d in days]
    unknown = [d for d in days if d not in WEEKDAYS]
    if unknown:
        raise ValueError(f"unknown day(s) {unknown}: use {', '.join(WEEKDAYS)}")
    return days


def parse_clock_range(text: str) -> tuple[int, int]:
    """`"22:00-07:00"` -> (start, end) in seconds after midnight; the end may be `24:00`."""
    m = _CLOCK_RANGE.match(text.replace(" ", ""))
    if not m:
        raise ValueError(f"{text!r} is not a time range like 22:00-07:00")
    h1, m1, s1, h2, m2, s2 = (int(g or 0) for g in m.groups())
    start, end = h1 * 3600 + m1 * 60 + s1, h2 * 3600 + m2 * 60 + s2
    if h1 > 23 or m1 > 59 or s1 > 59 or h2 > 24 or m2 > 59 or s2 > 59 or end > 86_400:
        raise ValueError(f"{text!r}: hours run 00-23 (24:00 as an end), minutes 00-59")
    if start == end:
        raise ValueError(f"{text!r} is empty: start and end are the same")
    return start, end


def clock_ranges(ranges: list[str]) -> list[str]:
    """Checks each range (`parse_clock_range`): the error names the first that is wrong."""
    for r in ranges:
        parse_clock_range(r)
    return ranges


Weekdays = Annotated[list[str], AfterValidator(weekdays)]  # quiet hours' and rotations' days
ClockRanges = Annotated[list[str], AfterValidator(clock_ranges)]  # "22:00-07:00", …


class Webhook(Model):
    """An outbound webhook: every matching incident event is POSTed here, signed with `secret`."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+", max_length=2_000)]
    secret: Annotated[str, StringConstraints(min_length=16, max_length=500)]


class QuietHours(Model):
    """Times when a subscription is not disturbed; what is held back is told when they end."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = "UTC"
    ranges: ClockRanges = Field(min_length=1, max_length=20)  # may cross midnight
    days: Weekdays = Field(default_factory=lambda: list(WEEKDAYS))  # the day a range starts
    urgent_bypass: bool = False  # red alerts go through anyway

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, tz: str) -> str:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {tz!r} (use an IANA name like Europe/Paris)"
            ) from None
        return tz


class RateLimit(Model):
    """At most `count` messages per `window`; the overflow is sent as one digest at its end."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1, le=100_000)
    window: SubscriptionSeconds


class Templates(Model):
    """Jinja2 templates for a message's title and body (see the README for their variables)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=2_000)
    body: str | None = Field(default=None, max_length=20_000)


MessageFormat = Literal["text", "markdown", "html"]


class SubscriptionFields(Model):
    """What a user declares about a subscription (shared/subscriptions.py validates it)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
    urls: list[str] = Field(default_factory=list)  # apprise URLs, or…
    webhook: Webhook | None = None  # …one signed JSON webhook
    min_severity: Severity = Severity.ASSESSING
    topics: list[str] = Field(default_factory=list)  # empty: every topic
    sources: list[str] = Field(default_factory=list)  # empty: every source
    matchers: MatcherList = Field(default_factory=list)  # on the incident's labels; empty: all
    # Routing (shared/routing.py): higher first; `continue: false` skips the routes after it.
    priority: int = Field(default=0, ge=-1_000, le=1_000)
    continue_: bool = Field(default=True, alias="continue")
    send_resolved: bool = True
    quiet_hours: QuietHours | None = None
    # Re-notify an unacknowledged red alert this often.
    repeat_interval: SubscriptionSeconds | None = None
    rate_limit: RateLimit | None = None
    format: MessageFormat = "text"
    templates: Templates | None = None
    # How urgent every message is, as the channel's priority (ntfy, Gotify, Pushover, email
    # importance); unset: from each message's severity (services/notify/urgency.py).
    urgency: Literal["low", "normal", "high", "urgent"] | None = None


class Subscription(SubscriptionFields):
    id: str = Field(default_factory=new_id)
    origin: Literal["api", "file"] = "api"
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime | None = None


class DeliveryOutcome(StrEnum):
    SENT = "sent"
    FAILED = "failed"  # this attempt failed; another follows
    DEADLETTERED = "deadlettered"  # the last attempt failed, or the URL's circuit is open
    DIGESTED = "digested"  # over the rate limit: goes out in the window's digest


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
    kind: str | None = None  # firing, changed, all_clear, resolved, repeat, digest, event, replay
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
