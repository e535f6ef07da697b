"""What a notification says: title, body and apprise type, from an incident event. Pure."""

from pydantic import BaseModel

from services.notify.firing import NoticeKind
from shared.models import IncidentEvent, Subscription
from shared.severity import Severity


class Notification(BaseModel):
    event_id: str
    incident_id: str
    subscription_id: str
    kind: NoticeKind
    title: str
    body: str
    notify_type: str  # apprise: failure, warning, success


def tag(kind: NoticeKind, severity: Severity) -> tuple[str, str]:
    """The title's tag and the apprise notify type."""
    if kind is NoticeKind.RESOLVED:
        return "RESOLVED", "success"
    if kind is NoticeKind.ALL_CLEAR or severity is Severity.NO_DANGER:
        return "ALL CLEAR", "success"
    return severity.label.upper(), severity.apprise_type


def render(
    event: IncidentEvent, sub: Subscription, kind: NoticeKind, public_url: str
) -> Notification:
    incident = event.incident
    label, notify_type = tag(kind, incident.severity)
    lines = [
        f"Severity: {incident.severity.label} · status: {incident.status.value} · "
        f"{incident.post_count} post(s)",
        f"What changed: {event.reason}",
    ]
    if event.post is not None:
        who = event.post.author or event.post.source
        lines += ["", f"{who}: {event.post.text}"]
        if event.post.url:
            lines.append(event.post.url)
    lines += ["", f"Incident: {public_url.rstrip('/')}/v1/incidents/{incident.id}"]
    return Notification(
        event_id=event.id,
        incident_id=incident.id,
        subscription_id=sub.id,
        kind=kind,
        title=f"[{label}] {incident.title}",
        body="\n".join(lines),
        notify_type=notify_type,
    )
