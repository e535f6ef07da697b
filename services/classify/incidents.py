"""The incident state machine: pure functions from (incident, what happened) to (incident, events).

Severity escalates at once and comes down only on an explicit all-clear from a source trusted at
least as much as the one that raised it (hysteresis: one "still assessing" after a confirmed leak
does not stand the alert down). An all-clear about some of an incident's subjects (status-page
components, places: shared/subjects.py) does not bring it down while another is still affected;
an explicit stand-down resolves the incident whatever its subjects. People acknowledge, resolve
and reopen through commands. Every change of severity or status is one IncidentEvent, whose id
is the incident id and its new version, so the same transition always has the same id.
"""

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.classify.terms import merge_names, merge_terms, names, salient_terms
from shared.labels import union
from shared.models import (
    MAX_WARNINGS,
    Classification,
    CommandAction,
    EventKind,
    Incident,
    IncidentCommand,
    IncidentEvent,
    IncidentStatus,
    Post,
)
from shared.severity import Severity
from shared.subjects import name_of, still_affected, subjects_of

TITLE_CHARS = 120


@dataclass
class Transition:
    incident: Incident | None
    events: list[IncidentEvent] = field(default_factory=list)
    changed: bool = False  # the snapshot changed (a new version must be written)


def new_incident_id() -> str:
    return secrets.token_hex(6)


def opens_incident(c: Classification) -> bool:
    """An alarm opens an incident: assessing or above, and about something — a topic, a danger
    cue, a source that decided the severity itself, or the severity model where the rules were
    unsure (it learnt from posts about something). Chatter opens nothing."""
    if c.severity < Severity.ASSESSING:
        return False
    cue = any(h.kind == "cue" and h.effect in ("counted", "hedged") for h in c.hits)
    hinted = c.hint is not None and c.hint.matched and c.hint.effect is None
    decided = c.post.severity is not None or hinted
    learnt = c.model is not None and c.model.decided
    return bool(c.topics) or cue or decided or learnt


def subjects_said(c: Classification, known: dict[str, str]) -> dict[str, str]:
    """What a post says of the incident's subjects: its subject labels. A structured all-clear
    (a status page's `monitoring`) says no more than its labels: the components it does not
    list keep their status. A text all-clear without labels clears the known subjects it names
    ("Pages is operating normally."), or every one if it names none ("all systems normal")."""
    said = subjects_of(c.post.labels)
    structured = c.hint is not None and c.hint.effect is not None
    if said or not c.all_clear or structured:
        return said
    text = c.post.text.lower()
    named = {s: "clear" for s in known if _names(text, name_of(s).lower())}
    return named or dict.fromkeys(known, "clear")


def _names(text: str, name: str) -> bool:
    at = text.find(name)
    while at >= 0:
        before = text[at - 1] if at else " "
        after = text[at + len(name)] if at + len(name) < len(text) else " "
        if not before.isalnum() and not after.isalnum():
            return True
        at = text.find(name, at + 1)
    return False


def title_for(post: Post) -> str:
    text = " ".join(post.text.split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


def apply_post(
    incident: Incident | None, c: Classification, *, new_id: str, now: datetime
) -> Transition:
    post = c.post
    if incident is None:
        if not opens_incident(c):
            return Transition(None)
        opened = Incident(
            id=new_id,
            title=title_for(post),
            severity=c.severity,
            peak_severity=c.severity,
            topics=c.topics,
            sources=[post.source],
            opened_at=now,
            updated_at=now,
            last_post_at=post.received_at,
            post_count=1,
            severity_trust=c.trust,
            terms=merge_terms([], salient_terms(post.text)),
            names=merge_names([], names(post.text)),
            labels=dict(post.labels),
            warnings=list(dict.fromkeys(post.warnings))[:MAX_WARNINGS],
            subjects=subjects_of(post.labels),
            version=1,
        )
        return Transition(
            opened,
            [_event(EventKind.OPENED, opened, None, c, f"opened at {c.severity.label}")],
            changed=True,
        )

    # A shallow copy: every list or dict changed below is a new one (a deep copy per post was
    # a tenth of classify's time).
    nxt = incident.model_copy()
    nxt.post_count += 1
    nxt.last_post_at = max(post.received_at, incident.last_post_at or post.received_at)
    nxt.updated_at = now
    nxt.topics = sorted(set(nxt.topics) | set(c.topics))
    nxt.terms = merge_terms(nxt.terms, salient_terms(post.text))
    said = subjects_said(c, incident.subjects)
    nxt.subjects = {**incident.subjects, **said}
    nxt.names = merge_names(nxt.names, names(post.text))
    if post.source not in nxt.sources:
        nxt.sources = [*nxt.sources, post.source]
    nxt.labels = union(nxt.labels, post.labels)
    nxt.warnings = list(dict.fromkeys(nxt.warnings + post.warnings))[:MAX_WARNINGS]
    nxt.version += 1

    kind, reason = _post_effect(incident, c, said, nxt.subjects)
    if kind is None and incident.is_open and (widened := _widened(incident, nxt)):
        # Who should hear may have changed (subscriptions filter on sources, topics, labels):
        # an event lets notify tell those who match only now.
        return Transition(nxt, [_event(EventKind.WIDENED, nxt, incident, c, widened)], True)
    if kind is None:
        return Transition(nxt, [], changed=True)
    if kind is EventKind.REOPENED:
        nxt.status = IncidentStatus.OPEN
        nxt.resolved_at = None
        nxt.acknowledged_by = None
        nxt.severity = c.severity
        nxt.severity_trust = c.trust
    elif kind is EventKind.RESOLVED:
        nxt.status = IncidentStatus.RESOLVED
        nxt.resolved_at = post.received_at  # when it was said, as for commands (see _post_effect)
        nxt.severity = Severity.NO_DANGER
    else:  # escalated or de-escalated
        nxt.severity = c.severity
        nxt.severity_trust = c.trust
    nxt.peak_severity = max(nxt.peak_severity, nxt.severity)
    return Transition(nxt, [_event(kind, nxt, incident, c, reason)], changed=True)


def _widened(before: Incident, after: Incident) -> str:
    """What a joining post added that subscriptions filter on ('' if nothing)."""
    parts = []
    if sources := [s for s in after.sources if s not in before.sources]:
        parts.append(f"source {', '.join(sources)}")
    if topics := [t for t in after.topics if t not in before.topics]:
        parts.append(f"topic {', '.join(topics)}")
    if labels := [f"{k}={v}" for k, v in after.labels.items() if k not in before.labels]:
        parts.append(f"label {', '.join(labels)}")
    return "now also " + "; ".join(parts) if parts else ""


def _post_effect(
    incident: Incident, c: Classification, said: dict[str, str], subjects: dict[str, str]
) -> tuple[EventKind | None, str]:
    if not incident.is_open:
        # Posts and commands travel on separate streams and may be applied out of order: an
        # alarm received before the resolution was asked for is late news, not a new alarm.
        later = incident.resolved_at is None or c.post.received_at > incident.resolved_at
        if opens_incident(c) and later:
            return EventKind.REOPENED, f"reopened at {c.severity.label} by a new post"
        return None, ""
    trusted = c.trust >= incident.severity_trust
    if c.stand_down and trusted:
        return EventKind.RESOLVED, f"resolved: stand-down ({_cue_text(c)})"
    if c.all_clear and trusted and c.severity < incident.severity:
        if _partial(c, said, subjects):
            return None, ""  # some subjects recovered, others not: it stays as it is
        return EventKind.DE_ESCALATED, f"all clear ({_cue_text(c)}): down to {c.severity.label}"
    if c.severity > incident.severity:
        return EventKind.ESCALATED, f"escalated to {c.severity.label}"
    return None, ""


def _partial(c: Classification, said: dict[str, str], subjects: dict[str, str]) -> bool:
    """An all-clear that leaves a subject of the incident affected (see `subjects_said`)."""
    return bool(still_affected(subjects))


def _cue_text(c: Classification) -> str:
    if c.hint is not None and c.hint.effect is not None:
        return f"{c.hint.scheme} says " + " ".join(f"{k}={v}" for k, v in c.hint.says.items())
    words = [f'"{h.text}"' for h in c.hits if h.kind in ("all_clear", "stand_down")]
    return ", ".join(words) or "explicit all-clear"


def apply_quiet(incident: Incident, *, now: datetime, quiet_period_s: float) -> Transition:
    """An open incident nobody has posted about for the quiet period resolves on its own."""
    last = incident.last_post_at or incident.updated_at
    quiet = quiet_period_s > 0 and now - last >= timedelta(seconds=quiet_period_s)
    if not incident.is_open or not quiet:
        return Transition(incident)
    nxt = incident.model_copy(deep=True)
    nxt.status = IncidentStatus.RESOLVED
    nxt.resolved_at = now
    nxt.updated_at = now
    nxt.version += 1
    event = IncidentEvent(
        id=f"{nxt.id}:{nxt.version}",
        kind=EventKind.RESOLVED,
        incident=nxt,
        previous_severity=incident.severity,
        previous_status=incident.status,
        reason=f"resolved on its own: no posts for {_duration(now - last)}",
        at=now,
    )
    return Transition(nxt, [event], changed=True)


def _duration(d: timedelta) -> str:
    minutes = int(d.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def apply_command(incident: Incident, cmd: IncidentCommand, *, now: datetime) -> Transition:
    status = incident.status
    target = {
        CommandAction.ACK: IncidentStatus.ACKNOWLEDGED,
        CommandAction.RESOLVE: IncidentStatus.RESOLVED,
        CommandAction.REOPEN: IncidentStatus.OPEN,
    }[cmd.action]
    allowed = {
        CommandAction.ACK: status is IncidentStatus.OPEN,
        CommandAction.RESOLVE: status is not IncidentStatus.RESOLVED,
        CommandAction.REOPEN: status is IncidentStatus.RESOLVED,
    }[cmd.action]
    if not allowed:
        return Transition(incident)  # already there: applying a command twice changes nothing
    nxt = incident.model_copy(deep=True)
    nxt.status = target
    nxt.updated_at = now
    nxt.version += 1
    if cmd.action is CommandAction.ACK:
        nxt.acknowledged_by = cmd.actor
    elif cmd.action is CommandAction.RESOLVE:
        nxt.resolved_at = cmd.at  # when it was asked: posts received before it do not reopen
    else:
        nxt.resolved_at = None
        nxt.acknowledged_by = None
    kind = {
        CommandAction.ACK: EventKind.ACKNOWLEDGED,
        CommandAction.RESOLVE: EventKind.RESOLVED,
        CommandAction.REOPEN: EventKind.REOPENED,
    }[cmd.action]
    reason = f"{kind.value.replace('_', ' ')} by {cmd.actor} via {cmd.via}"
    if cmd.note:
        reason += f": {cmd.note}"
    event = IncidentEvent(
        id=f"{nxt.id}:{nxt.version}",
        kind=kind,
        incident=nxt,
        previous_severity=incident.severity,
        previous_status=incident.status,
        reason=reason,
        command=cmd,
        at=now,
    )
    return Transition(nxt, [event], changed=True)


def _event(
    kind: EventKind,
    incident: Incident,
    previous: Incident | None,
    c: Classification,
    reason: str,
) -> IncidentEvent:
    return IncidentEvent(
        id=f"{incident.id}:{incident.version}",
        kind=kind,
        incident=incident,
        previous_severity=previous.severity if previous else None,
        previous_status=previous.status if previous else None,
        reason=reason,
        post=c.post,
        post_severity=c.severity,
        at=incident.updated_at,
    )
