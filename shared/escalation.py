"""Escalation policies: page the right people, then the next ones if nobody acknowledges. Pure,
except the store at the end.

A policy applies to an open incident at or above its `min_severity` whose labels match its
`matchers`. Its steps run in order, each `after` its delay from the start (a cycle); `repeat`
runs the cycle again that many times, `repeat_after` after the last step. An acknowledgement
or a resolution stops it. Which policies (and subscriptions) take an incident at all is routing:
shared/routing.py (`priority`, `continue: false`).

A step notifies targets: `person:alice` (her contacts), `schedule:db-primary` (whoever is on
call then) or `subscription:ops chat` (its URLs). Every page carries a link that acknowledges
*as the recipient*, so the timeline says who answered.
"""

import hmac
import time
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from redis.asyncio import Redis

from shared import links
from shared.keys import Keys
from shared.matchers import MatcherList, compiled
from shared.models import Incident, IncidentStatus, parse_duration, utcnow
from shared.people import NAME_PATTERN
from shared.severity import Severity

MAX_POLICIES = 1_000
TARGET_KINDS = ("person", "schedule", "subscription")
PAGE_ACTION = "page-ack"  # signed into a page's ack link with the recipient's name


def _delay(value: Any) -> Any:
    """Like durations elsewhere (`90s`, `5m`), but `0`/`0s` is allowed: step 1 at once."""
    if isinstance(value, str) and value.strip() in ("0", "0s", "0m"):
        return 0
    return parse_duration(value)


def parse_target(target: str) -> tuple[str, str]:
    kind, sep, name = target.partition(":")
    if not sep or kind not in TARGET_KINDS or not name.strip():
        raise ValueError(f"{target[:60]!r}: write person:NAME, schedule:NAME or subscription:NAME")
    return kind, name.strip()


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: float = Field(default=0, ge=0, le=7 * 86_400)  # from the start of the cycle
    notify: list[str] = Field(min_length=1, max_length=20)

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, value: Any) -> Any:
        return _delay(value)

    @field_validator("notify")
    @classmethod
    def _targets(cls, targets: list[str]) -> list[str]:
        out = []
        for i, t in enumerate(targets):
            try:
                kind, name = parse_target(t)
            except ValueError as e:
                raise ValueError(f"notify[{i}]: {e}") from None
            out.append(f"{kind}:{name}")
        return out


class PolicySpec(BaseModel):
    """`POST /v1/escalation-policies`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    name: str = Field(pattern=NAME_PATTERN)
    matchers: MatcherList = Field(default_factory=list)
    min_severity: Severity = Severity.RED_ALERT
    steps: list[Step] = Field(min_length=1, max_length=20)
    repeat: int = Field(default=0, ge=0, le=10)
    repeat_after: float = Field(default=300, gt=0, le=7 * 86_400)
    priority: int = Field(default=0, ge=-1_000, le=1_000)
    continue_: bool = Field(default=True, alias="continue")

    @field_validator("repeat_after", mode="before")
    @classmethod
    def _repeat_after(cls, value: Any) -> Any:
        return parse_duration(value)

    @model_validator(mode="after")
    def _ordered(self) -> "PolicySpec":
        for i in range(1, len(self.steps)):
            if self.steps[i].after < self.steps[i - 1].after:
                raise ValueError(
                    f"steps[{i}].after: {self.steps[i].after:g}s comes before step {i}'s "
                    f"{self.steps[i - 1].after:g}s (each step's `after` counts from the start)"
                )
        return self

    def targets(self) -> list[tuple[tuple[str | int, ...], str, str]]:
        """Every target with where it is (for a 422 naming an unknown one)."""
        return [
            (("steps", s, "notify", i), *parse_target(t))
            for s, step in enumerate(self.steps)
            for i, t in enumerate(step.notify)
        ]


class Policy(PolicySpec):
    created_at: datetime = Field(default_factory=utcnow)

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# --- which policies apply ------------------------------------------------------------------------


def why_not(policy: PolicySpec, incident: Incident) -> str | None:
    """None when the policy applies to the incident; else why not."""
    if incident.status is not IncidentStatus.OPEN:
        return f"the incident is {incident.status.value}"
    if incident.severity < policy.min_severity:
        return f"{incident.severity.label} is below {policy.min_severity.label}"
    miss = compiled(policy.matchers).first_mismatch(incident.labels)
    if miss is not None:
        return f"labels: {miss} does not match"
    return None


def by_priority(policies: list[Policy]) -> list[Policy]:
    return sorted(policies, key=lambda p: (-p.priority, p.name))


# --- the run of one policy for one incident ------------------------------------------------------


class PageRecord(BaseModel):
    """One target of one step: who was paged (or why nobody), and how it went."""

    step: int  # 1-based
    cycle: int  # 0-based: 1 is the first repeat
    target: str
    person: str | None = None  # the person paged (for person: and schedule: targets)
    outcome: str = "sent"  # sent, failed, nobody on call, unknown target
    error: str | None = None


class EscalationState(BaseModel):
    policy: str
    incident_id: str
    started_at: datetime
    next: int = 0  # the next step to page, counted across cycles
    status: Literal["running", "stopped", "done"] = "running"
    reason: str | None = None  # why it stopped or finished
    held_by: str | None = None  # the silence holding the next step back, if any
    pages: list[PageRecord] = Field(default_factory=list)


def step_of(policy: PolicySpec, n: int) -> tuple[int, int]:
    """The n-th step paged (from 0, across cycles) as (cycle, step index)."""
    return divmod(n, len(policy.steps))


def cycle_length(policy: PolicySpec) -> float:
    return policy.steps[-1].after + policy.repeat_after


def due_at(policy: PolicySpec, state: EscalationState) -> datetime | None:
    """When the next step is due; None when every step of every cycle was paged."""
    cycle, i = step_of(policy, state.next)
    if cycle > policy.repeat:
        return None
    offset = cycle * cycle_length(policy) + policy.steps[i].after
    return state.started_at + timedelta(seconds=offset)


def log_entry(
    kind: str, state: EscalationState, at: datetime, reason: str, **extra: Any
) -> dict[str, Any]:
    """A line of the incident's timeline (merged with its events by shared/incidents.py)."""
    return {
        "kind": kind,
        "at": at.isoformat(),
        "policy": state.policy,
        "reason": reason,
        **extra,
    }


# --- the recipient's own ack link ---------------------------------------------------------------


def ack_link(
    public_url: str,
    ttl_s: int,
    secret: bytes,
    incident_id: str,
    who: str,
    version: int,
    now: float | None = None,
) -> str:
    """A link that acknowledges the incident as `who`, signed (shared.links.signature) over the
    incident, the recipient, the incident's version it was sent about and its expiry. Like every
    action link it works once, and only until the incident moves on (services/ingest/routes/
    escalation.py checks both)."""
    expires = int((now if now is not None else time.time()) + ttl_s)
    sig = links.signature(secret, incident_id, _action(who), version, expires)
    base = public_url.rstrip("/")
    return (
        f"{base}/v1/incidents/{quote(incident_id, safe='')}/ack/as/{quote(who, safe='')}"
        f"?v={version}&expires={expires}&sig={sig}"
    )


def verify_ack(
    secret: bytes,
    incident_id: str,
    who: str,
    version: int,
    expires: int,
    sig: str,
    now: float | None = None,
) -> tuple[int, str] | None:
    """None when the signature is good and current; otherwise (HTTP status, why not)."""
    expected = links.signature(secret, incident_id, _action(who), version, expires)
    if not hmac.compare_digest(expected, sig):
        return 403, "its signature does not match (the link was changed, or never issued here)"
    if (now if now is not None else time.time()) > expires:
        return 410, "it has expired"
    return None


def _action(who: str) -> str:
    return f"{PAGE_ACTION}:{who}"


def page_text(
    incident: Incident, policy: PolicySpec, cycle: int, step: int, who: str, ack: str, page: str
) -> tuple[str, str]:
    """A page's title and body (plain text: pages go to pagers, phones and chat alike)."""
    again = f", repeat {cycle}" if cycle else ""
    title = f"[PAGE] [{incident.severity.label.upper()}] {incident.title}"
    labels = ", ".join(f"{k}={v}" for k, v in sorted(incident.labels.items()))
    lines = [
        f"You are paged ({who}): escalation policy {policy.name}, step {step + 1} of "
        f"{len(policy.steps)}{again}.",
        f"Severity: {incident.severity.label} · status: {incident.status.value}",
    ]
    if labels:
        lines.append(f"Labels: {labels}")
    lines += ["", f"Acknowledge as {who}: {ack}", f"Incident: {page}"]
    nxt = step + 1
    if nxt < len(policy.steps):
        lines.append(
            f"Without an acknowledgement, step {nxt + 1} is paged "
            f"{policy.steps[nxt].after:g}s after the start."
        )
    return title, "\n".join(lines)


# --- storage ------------------------------------------------------------------------------------


class PolicyStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def all(self) -> list[Policy]:
        raw = await self.redis.hgetall(self.keys.escalation_policies)
        return by_priority([Policy.model_validate_json(v) for v in raw.values()])

    async def get(self, name: str) -> Policy | None:
        raw = await self.redis.hget(self.keys.escalation_policies, name)
        return Policy.model_validate_json(raw) if raw else None

    async def count(self) -> int:
        return int(await self.redis.hlen(self.keys.escalation_policies))

    async def version(self) -> int:
        return int(await self.redis.get(self.keys.escalation_policies_version) or 0)

    async def put(self, policy: Policy) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.escalation_policies, policy.name, policy.model_dump_json())
            pipe.incr(self.keys.escalation_policies_version)
            await pipe.execute()

    async def delete(self, name: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.escalation_policies, name)
            pipe.incr(self.keys.escalation_policies_version)
            removed, _ = await pipe.execute()
        return bool(removed)
