"""When a subscription is told: a pure function of what it was last told and the new event.

An incident is *firing* for a subscription while it is not resolved and its severity is at or
above the subscription's `min_severity`. A subscription hears when the incident starts firing,
when its severity changes while firing, and — with `send_resolved` — when it stops firing.
Never otherwise: an incident that stays at red alert through ten posts is one message — unless
the subscription asks to be reminded (`repeat_interval`) while it stays at red alert and nobody
has acknowledged it.
"""

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel

from shared.models import EventKind, Incident, IncidentEvent, IncidentStatus, Subscription
from shared.severity import Severity


class NoticeKind(StrEnum):
    FIRING = "firing"  # started firing
    CHANGED = "changed"  # severity changed while firing
    ALL_CLEAR = "all_clear"  # fell below the subscription's threshold
    RESOLVED = "resolved"  # the incident was resolved
    REPEAT = "repeat"  # still at red alert, unacknowledged, after repeat_interval
    DIGEST = "digest"  # the overflow of a rate-limit window
    EVENT = "event"  # a webhook subscription's copy of an incident event
    TEST = "test"  # `redalert subscriptions test`


class FiringState(BaseModel):
    """What one subscription was last told about one incident."""

    version: int  # the incident version this state reflects
    firing: bool
    severity: Severity | None = None  # the severity it was told while firing
    told_at: datetime | None = None  # when it was last told it fires (repeats count from here)
    repeats: int = 0  # reminders sent since
    # The incident was acknowledged, then escalated: reminders start again.
    escalated_since_ack: bool = False


def is_firing(incident: Incident, sub: Subscription) -> bool:
    return incident.is_open and incident.severity >= sub.min_severity


def decide(
    prev: FiringState | None,
    event: IncidentEvent,
    sub: Subscription,
    now: datetime | None = None,
) -> tuple[FiringState, NoticeKind | None]:
    incident = event.incident
    if prev is not None and incident.version <= prev.version:
        return prev, None  # already decided, or older than what was decided
    now_firing = is_firing(incident, sub)
    was = prev is not None and prev.firing
    acked = incident.status is IncidentStatus.ACKNOWLEDGED
    state = FiringState(
        version=incident.version,
        firing=now_firing,
        severity=incident.severity if now_firing else None,
        told_at=prev.told_at if prev else None,
        repeats=prev.repeats if prev else 0,
        escalated_since_ack=acked
        and ((prev is not None and prev.escalated_since_ack) or event.kind is EventKind.ESCALATED),
    )
    told = state.model_copy(update={"told_at": now, "repeats": 0})
    if now_firing and not was and event.kind is EventKind.ACKNOWLEDGED:
        # Someone is on it: a subscription that never heard of it (made since it opened, or
        # matching only now) is not paged by the ack. It hears if it escalates.
        return state.model_copy(update={"firing": False, "severity": None}), None
    if now_firing and not was:
        return told, NoticeKind.FIRING
    if now_firing and was:
        assert prev is not None
        changed = prev.severity != incident.severity
        return (told, NoticeKind.CHANGED) if changed else (state, None)
    if was and not now_firing and sub.send_resolved:
        return told, NoticeKind.ALL_CLEAR if incident.is_open else NoticeKind.RESOLVED
    return state, None


def repeat_due(
    told: FiringState | None, incident: Incident, sub: Subscription, now: datetime
) -> datetime | None:
    """When the next reminder is due (it may be now or past), or None if none will be."""
    if sub.repeat_interval is None or told is None or told.told_at is None or not told.firing:
        return None
    if incident.severity is not Severity.RED_ALERT or told.severity is not Severity.RED_ALERT:
        return None
    if not incident.is_open:
        return None
    if incident.status is IncidentStatus.ACKNOWLEDGED and not told.escalated_since_ack:
        return None  # someone is on it: no reminders until it escalates
    return told.told_at + timedelta(seconds=sub.repeat_interval)


def repeated(told: FiringState, now: datetime) -> FiringState:
    return told.model_copy(update={"told_at": now, "repeats": told.repeats + 1})
