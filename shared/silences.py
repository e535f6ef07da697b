"""Silences: an operator's "not now" for matching alerts, from a start to an end.

A silence matches an (incident, subscription) pair when every matcher it has matches: a topic of
the incident, a source of the incident, the incident's id, the subscription's id or name, and
label matchers in Alertmanager's syntax (`service=~"api|web"`) on the incident's labels.
`"matchers": ['service=~"api|web"']` (a list or one `{…}` string) is short for
`"matchers": {"labels": [...]}`. While
active it holds back firing notifications; resolved ones still go out when the subscription asks
for them. When it ends (or is expired early) while the incident still fires, the subscriber is
told — notify's scheduler wakes the pairs it held (see services/notify/pipeline.py).
"""

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from redis.asyncio import Redis

from shared import due
from shared.keys import Keys
from shared.matchers import MatcherList, compiled
from shared.models import Incident, Model, Seconds, Subscription, new_id, utcnow

EXPIRED_KEPT = timedelta(days=7)  # expired silences stay listed this long, then go


class SilenceState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"


class Matchers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topic: str | None = Field(default=None, min_length=1, max_length=200)
    source: str | None = Field(default=None, min_length=1, max_length=200)
    incident_id: str | None = Field(default=None, min_length=1, max_length=200)
    subscription: str | None = Field(default=None, min_length=1, max_length=200)  # id or name
    labels: MatcherList = Field(default_factory=list)  # on the incident's labels

    @model_validator(mode="after")
    def _not_empty(self) -> "Matchers":
        if not any((self.topic, self.source, self.incident_id, self.subscription, self.labels)):
            raise ValueError(
                "give at least one of topic, source, incident_id, subscription, labels"
            )
        return self

    def match(self, incident: Incident, sub: Subscription) -> bool:
        return (
            compiled(self.labels).matches(incident.labels)
            and (self.topic is None or self.topic.lower() in (t.lower() for t in incident.topics))
            and (
                self.source is None or self.source.lower() in (s.lower() for s in incident.sources)
            )
            and (self.incident_id is None or self.incident_id == incident.id)
            and (self.subscription is None or self.subscription in (sub.id, sub.name))
        )


def _label_matchers_alone(value: object) -> object:
    """A list of matchers (or one `{…}` string) is the Alertmanager way to write a silence."""
    return {"labels": value} if isinstance(value, list | str) else value


class Silence(Model):
    id: str = Field(default_factory=lambda: new_id()[:12])
    matchers: Matchers
    starts_at: datetime
    ends_at: datetime
    author: str
    comment: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    expired_by: str | None = None  # who ended it early

    def state(self, now: datetime) -> SilenceState:
        if now < self.starts_at:
            return SilenceState.PENDING
        if now < self.ends_at:
            return SilenceState.ACTIVE
        return SilenceState.EXPIRED

    def public(self, now: datetime) -> dict[str, object]:
        return {**self.model_dump(mode="json", exclude_none=True), "state": self.state(now).value}


class SilenceSpec(BaseModel):
    """`POST /v1/silences`: matchers, when (ends_at or duration), who and why."""

    model_config = ConfigDict(extra="forbid")

    matchers: Matchers
    starts_at: datetime | None = None  # default: now
    ends_at: datetime | None = None
    duration: Seconds | None = None  # instead of ends_at: "2h"
    author: str = Field(min_length=1, max_length=200)
    comment: str = Field(default="", max_length=2_000)

    @field_validator("matchers", mode="before")
    @classmethod
    def _labels_alone(cls, value: object) -> object:
        return _label_matchers_alone(value)

    @model_validator(mode="after")
    def _when(self) -> "SilenceSpec":
        if (self.ends_at is None) == (self.duration is None):
            raise ValueError("give either ends_at or duration")
        for name in ("starts_at", "ends_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name}: give a time zone (e.g. 2026-11-26T08:00:00Z)")
        return self

    def to_silence(self, now: datetime) -> Silence:
        starts = self.starts_at or now
        try:
            ends = self.ends_at or starts + timedelta(seconds=self.duration or 0)
        except OverflowError:
            raise ValueError("duration: ends after the year 9999") from None
        if ends <= starts:
            raise ValueError("ends_at: must be after starts_at")
        if ends <= now:
            raise ValueError("ends_at: already in the past")
        return Silence(
            matchers=self.matchers,
            starts_at=starts,
            ends_at=ends,
            author=self.author,
            comment=self.comment,
        )


def silencing(
    silences: list[Silence], incident: Incident, sub: Subscription, now: datetime
) -> Silence | None:
    """The active silence holding this pair back longest, if any."""
    active = [
        s
        for s in silences
        if s.state(now) is SilenceState.ACTIVE and s.matchers.match(incident, sub)
    ]
    return max(active, key=lambda s: s.ends_at, default=None)


class SilenceStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def all(self) -> list[Silence]:
        raw = await self.redis.hgetall(self.keys.silences)
        silences = [Silence.model_validate_json(v) for v in raw.values()]
        return sorted(silences, key=lambda s: s.created_at, reverse=True)

    async def get(self, silence_id: str) -> Silence | None:
        raw = await self.redis.hget(self.keys.silences, silence_id)
        return Silence.model_validate_json(raw) if raw else None

    async def version(self) -> int:
        return int(await self.redis.get(self.keys.silences_version) or 0)

    async def put(self, silence: Silence) -> None:
        now = utcnow()
        stale = [s.id for s in await self.all() if s.ends_at < now - EXPIRED_KEPT]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.silences, silence.id, silence.model_dump_json())
            for old in stale:
                pipe.hdel(self.keys.silences, old)
                pipe.delete(self.keys.silence_held(old))
            pipe.incr(self.keys.silences_version)
            await pipe.execute()

    async def expire(self, silence: Silence, by: str, now: datetime) -> Silence:
        """End a silence now, and wake what it held back so subscribers are told at once."""
        ended = silence.model_copy(update={"ends_at": min(silence.ends_at, now), "expired_by": by})
        held_key = self.keys.silence_held(silence.id)
        held = await self.redis.smembers(held_key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.silences, silence.id, ended.model_dump_json())
            pipe.incr(self.keys.silences_version)
            if held:
                pipe.zadd(self.keys.due, {m: due.score(now) for m in held})
            pipe.delete(held_key)
            await pipe.execute()
        return ended
