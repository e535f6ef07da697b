"""The delivery pipeline: what happens to one (incident event, subscription) pair. Pure.

    match → mute (silences, quiet hours) → dedup → rate limit → render      (this module)
    → commit → send → record                                             (service.py)

Each step looks at a Candidate and either passes it on or stops it, saying why. Reading
STEPS tells you the policy; changing the policy is editing STEPS. Nothing here touches Redis:
the service reads what the steps need into an Env (what each subscriber was told, the rate
counters, the silences), runs the steps, and writes their decisions in one compare-and-apply
per subscription — so two replicas never both decide to tell someone the same thing.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel

from services.notify import webhook
from services.notify.firing import (
    FiringState,
    NoticeKind,
    decide,
    is_firing,
    repeat_due,
    repeated,
)
from services.notify.quiet_hours import quiet_until
from services.notify.render import Links, Notification, links, render
from shared import templates
from shared.due import from_score, score
from shared.matchers import compiled
from shared.models import Incident, IncidentEvent, RateLimit, Subscription
from shared.routing import Route, skipped
from shared.severity import Severity
from shared.silences import Silence, silencing

DIGEST_GRACE = timedelta(seconds=1)  # a window's digest waits this long for stragglers


class Trigger(StrEnum):
    EVENT = "event"  # an incident event arrived
    RECHECK = "recheck"  # a mute that held this pair back ended
    REPEAT = "repeat"  # a reminder may be due


@dataclass
class Candidate:
    """One (event, subscription) pair on its way through the steps."""

    event: IncidentEvent
    sub: Subscription
    trigger: Trigger = Trigger.EVENT
    stopped: str | None = None  # "step: why" when a step stopped it
    kind: NoticeKind | None = None
    state: FiringState | None = None  # what the subscriber will have been told
    held_until: datetime | None = None
    held_by: Silence | None = None  # the silence holding it (None: quiet hours)
    digest_window: int | None = None  # over the rate limit: goes into this window's digest
    notification: Notification | None = None
    errors: list[str] = field(default_factory=list)  # the subscription's own (its templates)

    @property
    def told_key(self) -> tuple[str, str]:
        return self.sub.id, self.event.incident.id


class RateWindow(BaseModel):
    """A subscription's rate-limit window: it starts with the first message after the last one."""

    start: int  # Unix ms
    count: int = 0  # messages decided in it, sent or digested


@dataclass
class Env:
    """What the steps read: the time, and state the service loaded from Redis."""

    now: datetime
    silences: list[Silence] = field(default_factory=list)
    public_url: str = "http://127.0.0.1:8080"
    # Signed ack/resolve links for an incident (render.actions, with the link secret).
    signed: Callable[[Incident], Links] = lambda _: {}
    # What each subscriber was last told, by (subscription id, incident id); updated as
    # candidates pass, so two events of one batch for one pair are decided in order.
    told: dict[tuple[str, str], FiringState | None] = field(default_factory=dict)
    # Each rate-limited subscription's current window, by subscription id.
    rate: dict[str, RateWindow | None] = field(default_factory=dict)
    # Every route (subscriptions and escalation policies) for `continue: false`; and, by
    # incident snapshot, the subscriptions it skips (computed once per snapshot).
    routes: list[Route] = field(default_factory=list)
    skipped: dict[str, dict[tuple[str, str], str]] = field(default_factory=dict)
    # How long and how large a subscription's own template may render.
    limits: templates.Limits = field(default_factory=templates.Limits)


Step = Callable[[Candidate, Env], str | None]  # None: pass it on; else why it stops here


# --- the steps -----------------------------------------------------------------------------


def match(c: Candidate, env: Env) -> str | None:
    """Does the subscription want this incident at all?"""
    sub, incident = c.sub, c.event.incident
    if sub.topics and not set(sub.topics) & {t.lower() for t in incident.topics}:
        return "not one of its topics"
    if sub.sources and not set(sub.sources) & {s.lower() for s in incident.sources}:
        return "not one of its sources"
    if sub.matchers and (miss := compiled(sub.matchers).first_mismatch(incident.labels)):
        return f"labels: {miss} does not match"
    if env.routes:
        snapshot = f"{incident.id}:{incident.version}"
        if snapshot not in env.skipped:
            env.skipped[snapshot] = skipped(env.routes, incident)
        if (why := env.skipped[snapshot].get(("subscription", sub.id))) is not None:
            return why
    if sub.webhook is not None:
        if c.trigger is not Trigger.EVENT:
            return "webhooks get events only"
        if incident.peak_severity < sub.min_severity:
            return f"never reached {sub.min_severity.label}"
    return None


def mute(c: Candidate, env: Env) -> str | None:
    """Silences and quiet hours hold firing news back; the subscriber is told when they end.

    Resolved news passes a silence when the subscription wants it (`send_resolved`); quiet hours
    hold everything except a red alert with `urgent_bypass`. Webhooks are never muted: a tool
    mirroring incidents must see every event.
    """
    sub, incident = c.sub, c.event.incident
    if sub.webhook is not None:
        return None
    firing = is_firing(incident, sub)
    ends: list[datetime] = []
    silence = silencing(env.silences, incident, sub, env.now) if firing else None
    if silence is not None:
        ends.append(silence.ends_at)
    quiet = quiet_until(sub.quiet_hours, env.now)
    urgent = firing and incident.severity is Severity.RED_ALERT
    if quiet is not None and not (urgent and sub.quiet_hours and sub.quiet_hours.urgent_bypass):
        ends.append(quiet)
    if not ends:
        return None
    c.held_until, c.held_by = max(ends), silence
    why = f"silence {silence.id}" if silence is not None else "quiet hours"
    return f"held by {why} until {c.held_until.isoformat(timespec='seconds')}"


def dedup(c: Candidate, env: Env) -> str | None:
    """Is there anything the subscriber has not been told? (firing.decide, and reminders)"""
    if c.sub.webhook is not None:
        c.kind = NoticeKind.EVENT  # every event, once: its notification key is the dedup
        return None
    told = env.told.get(c.told_key)
    state, kind = decide(told, c.event, c.sub, env.now)
    if kind is None and c.trigger is Trigger.REPEAT:
        due = repeat_due(state, c.event.incident, c.sub, env.now)
        if due is not None and due <= env.now:
            state, kind = repeated(state, env.now), NoticeKind.REPEAT
    c.state = env.told[c.told_key] = state
    if kind is None:
        return "nothing new to tell"
    c.kind = kind
    return None


def rate_limit(c: Candidate, env: Env) -> str | None:
    """Over the limit in this window: into the window's digest (sent when it ends), not lost."""
    limit = c.sub.rate_limit
    if limit is None:
        return None
    window = current_window(env.rate.get(c.sub.id), env.now, limit)
    env.rate[c.sub.id] = window.model_copy(update={"count": window.count + 1})
    if window.count >= limit.count:
        c.digest_window = window.start
    return None


def render_step(c: Candidate, env: Env) -> str | None:
    """The message: the subscription's format and templates, or a webhook's signed JSON."""
    assert c.kind is not None
    signed = env.signed(c.event.incident)
    if c.sub.webhook is not None:
        shown = links(env.public_url, c.event.incident, signed)
        c.notification = webhook.payload(c.event, c.sub, shown)
        return None
    note = (
        "Held back earlier by a silence or quiet hours." if c.trigger is Trigger.RECHECK else None
    )
    event_id = c.event.id
    if c.kind is NoticeKind.REPEAT:
        assert c.state is not None
        event_id = f"{c.event.id}:repeat{c.state.repeats}"
    c.notification = render(
        c.event,
        c.sub,
        c.kind,
        env.public_url,
        signed=signed,
        note=note,
        event_id=event_id,
        limits=env.limits,
        errors=c.errors,
    )
    return None


STEPS: tuple[Step, ...] = (match, mute, dedup, rate_limit, render_step)


def run(c: Candidate, env: Env) -> Candidate:
    for step in STEPS:
        why = step(c, env)
        if why is not None:
            c.stopped = f"{step.__name__}: {why}"
            break
    return c


# --- helpers for the shell ------------------------------------------------------------------


def current_window(w: RateWindow | None, now: datetime, limit: RateLimit) -> RateWindow:
    if w is None or score(now) >= w.start + int(limit.window * 1000):
        return RateWindow(start=score(now))
    return w


def window_end(start: int, limit: RateLimit) -> datetime:
    return from_score(start + int(limit.window * 1000))


def next_repeat(c: Candidate, now: datetime) -> datetime | None:
    """When to look for the next reminder, after this candidate's decision."""
    if c.sub.repeat_interval is None or c.state is None:
        return None
    if c.stopped and c.trigger is not Trigger.REPEAT:
        return None  # nothing was told: the reminder already scheduled stands
    due = repeat_due(c.state, c.event.incident, c.sub, now)
    return due if due is not None and due > now else None
