"""When a subscription is told: a pure function of what it was last told and the new event.

An incident is *firing* for a subscription while it is not resolved and its severity is at or
above the subscription's `min_severity`. A subscription hears when the incident starts firing,
when its severity changes while firing, and — with `send_resolved` — when it stops firing.
Never otherwise: an incident that stays at red alert through ten posts is one message.
"""

from enum import StrEnum

from pydantic import BaseModel

from shared.models import IncidentEvent, Subscription
from shared.severity import Severity


class NoticeKind(StrEnum):
    FIRING = "firing"  # started firing
    CHANGED = "changed"  # severity changed while firing
    ALL_CLEAR = "all_clear"  # fell below the subscription's threshold
    RESOLVED = "resolved"  # the incident was resolved


class FiringState(BaseModel):
    """What one subscription was last told about one incident."""

    version: int  # the incident version this state reflects
    firing: bool
    severity: Severity | None = None  # the severity it was told while firing


def is_firing(event: IncidentEvent, sub: Subscription) -> bool:
    incident = event.incident
    return incident.is_open and incident.severity >= sub.min_severity


def decide(
    prev: FiringState | None, event: IncidentEvent, sub: Subscription
) -> tuple[FiringState, NoticeKind | None]:
    incident = event.incident
    if prev is not None and incident.version <= prev.version:
        return prev, None  # already decided, or older than what was decided
    now = is_firing(event, sub)
    was = prev is not None and prev.firing
    state = FiringState(
        version=incident.version, firing=now, severity=incident.severity if now else None
    )
    if now and not was:
        return state, NoticeKind.FIRING
    if now and was:
        assert prev is not None
        changed = prev.severity != incident.severity
        return state, NoticeKind.CHANGED if changed else None
    if was and not now and sub.send_resolved:
        return state, NoticeKind.ALL_CLEAR if incident.is_open else NoticeKind.RESOLVED
    return state, None
