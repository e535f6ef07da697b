"""What a notification says: title, body and apprise type, from an incident event. Pure.

Messages are Jinja2 templates: the defaults below (one body per format — text, markdown, html),
or a subscription's own `templates`. Every message about an open incident carries signed,
expiring links to acknowledge and resolve it (shared/links.py).
"""

import logging
from datetime import datetime

from pydantic import BaseModel, Field

from services.notify import urgency
from services.notify.firing import NoticeKind
from shared import templates
from shared.links import unsigned_link
from shared.models import Incident, IncidentEvent, IncidentStatus, Subscription, utcnow
from shared.settings import Settings
from shared.severity import Severity

log = logging.getLogger("redalert.notify")

# apprise notify types, from least to most urgent: a digest takes its most urgent message's.
URGENCY = ("info", "success", "warning", "failure")


class Notification(BaseModel):
    event_id: str
    incident_id: str
    subscription_id: str
    kind: NoticeKind
    title: str
    body: str
    notify_type: str  # apprise: failure, warning, success, info
    format: str = "text"  # text, markdown, html; json for webhooks
    at: datetime = Field(default_factory=utcnow)
    related: list[str] = Field(default_factory=list)  # a digest's incidents
    received_at: datetime | None = None  # when ingest received the post behind it (metrics)
    urgency: str = "normal"  # low, normal, high, urgent: the channel's priority (urgency.py)


DEFAULT_TITLE = "[{{ tag }}] {% if kind == 'repeat' %}(reminder) {% endif %}{{ incident.title }}"

DEFAULT_BODY = {
    "text": """\
Severity: {{ severity }} · status: {{ incident.status }} · {{ incident.post_count }} post(s)
What changed: {{ event.reason }}
{% if note %}
{{ note }}
{% endif %}
{% if post %}

{{ post.author }}: {{ post.text }}
{% if post.url %}
{{ post.url }}
{% endif %}
{% endif %}

Incident: {{ links.incident }}
{% if links.ack %}
Acknowledge: {{ links.ack }}
{% endif %}
{% if links.resolve %}
Resolve: {{ links.resolve }}
{% endif %}
""",
    "markdown": """\
**Severity:** {{ severity }} · **status:** {{ incident.status }} · {{ incident.post_count }} post(s)

**What changed:** {{ event.reason }}
{% if note %}

_{{ note }}_
{% endif %}
{% if post %}

> **{{ post.author }}:** {{ post.text }}
{% if post.url %}
> {{ post.url }}
{% endif %}
{% endif %}

[Incident]({{ links.incident }})
{%- if links.ack %} · [Acknowledge]({{ links.ack }}){% endif %}
{%- if links.resolve %} · [Resolve]({{ links.resolve }}){% endif %}
""",
    "html": """\
<p><b>Severity:</b> {{ severity }} · <b>status:</b> {{ incident.status }} ·
{{ incident.post_count }} post(s)<br>
<b>What changed:</b> {{ event.reason }}</p>
{% if note %}
<p><i>{{ note }}</i></p>
{% endif %}
{% if post %}
<blockquote><b>{{ post.author }}:</b> {{ post.text }}
{% if post.url %}<br><a href="{{ post.url }}">{{ post.url }}</a>{% endif %}</blockquote>
{% endif %}
<p><a href="{{ links.incident }}">Incident</a>
{%- if links.ack %} · <a href="{{ links.ack }}">Acknowledge</a>{% endif %}
{%- if links.resolve %} · <a href="{{ links.resolve }}">Resolve</a>{% endif %}</p>
""",
}


def tag(kind: NoticeKind, severity: Severity) -> tuple[str, str]:
    """The title's tag and the apprise notify type."""
    if kind is NoticeKind.RESOLVED:
        return "RESOLVED", "success"
    if kind is NoticeKind.ALL_CLEAR or severity is Severity.NO_DANGER:
        return "ALL CLEAR", "success"
    return severity.label.upper(), severity.apprise_type


Links = dict[str, str | None]  # incident, ack, resolve


def incident_url(public_url: str, incident_id: str) -> str:
    return f"{public_url.rstrip('/')}/v1/incidents/{incident_id}"


def actions(settings: Settings, incident: Incident) -> Links:
    """Ack and resolve links for this version of the incident, while those actions make sense.

    Unsigned: the sender signs them as the message goes out (shared/links.py), so no stored
    copy of a message (pending, digest, dead letter) holds a link that works."""
    url, version = settings.public_url, incident.version
    return {
        "ack": unsigned_link(url, incident.id, "ack", version)
        if incident.status is IncidentStatus.OPEN
        else None,
        "resolve": unsigned_link(url, incident.id, "resolve", version)
        if incident.is_open
        else None,
    }


def links(public_url: str, incident: Incident, signed: Links | None = None) -> Links:
    """The incident's page, and the signed action links when given."""
    return {"incident": incident_url(public_url, incident.id), "ack": None, "resolve": None} | (
        signed or {}
    )


def render(
    event: IncidentEvent,
    sub: Subscription,
    kind: NoticeKind,
    public_url: str,
    *,
    signed: Links | None = None,
    note: str | None = None,
    event_id: str | None = None,
    limits: templates.Limits | None = None,
    errors: list[str] | None = None,
) -> Notification:
    """The message for one subscription; `signed` adds the ack/resolve links (see `actions`).

    The subscription's own templates render within `limits`; one that fails falls back to the
    default, and what went wrong is appended to `errors` (notify records it on the subscription).
    """
    incident = event.incident
    label, notify_type = tag(kind, incident.severity)
    shown = links(public_url, incident, signed)
    own = sub.templates
    # The default message is the same for every subscription of a format: rendered once per
    # event for a fan-out to thousands (its templates do not use the subscription's name).
    # Keyed by the event object itself (kept alive by the entry, so its id is not reused).
    key = (id(event), kind, sub.format, note, tuple(shown.items()))
    cached = _DEFAULTS.get(key) if own is None else None
    if cached is not None and cached[0] is event:
        _, title, body = cached
    else:
        variables = templates.context(
            event, kind=kind.value, tag=label, links=shown, subscription=sub.name
        )
        variables["note"] = note
        html = sub.format == "html"
        failed = errors if errors is not None else []
        own_title, own_body = (own.title, own.body) if own else (None, None)
        title = _render_or_default(
            own_title, DEFAULT_TITLE, variables, False, sub, limits, failed, "title"
        )
        body = _render_or_default(
            own_body, DEFAULT_BODY[sub.format], variables, html, sub, limits, failed
        )
        if own is None:
            _DEFAULTS[key] = (event, title, body)
            if len(_DEFAULTS) > 256:
                _DEFAULTS.pop(next(iter(_DEFAULTS)))
    return Notification(
        event_id=event_id or event.id,
        incident_id=incident.id,
        subscription_id=sub.id,
        kind=kind,
        title=title,
        body=body,
        notify_type=notify_type,
        format=sub.format,
        received_at=event.post.received_at if event.post is not None else None,
        urgency=sub.urgency or urgency.of(incident.severity, kind),
    )


# Default messages by event, kind and format. (tests/test_delivery_pipeline.py checks that the
# default templates do not use `subscription`, which would make them differ per subscription.)
_DEFAULTS: dict[tuple[object, ...], tuple[IncidentEvent, str, str]] = {}


def _render_or_default(
    own: str | None,
    default: str,
    variables: dict,
    html: bool,
    sub: Subscription,
    limits: templates.Limits | None,
    errors: list[str],
    part: str = "body",
) -> str:
    if own is not None:
        try:
            out = templates.render_limited(own, variables, html=html, limits=limits)
            if out or part != "body":
                return out
            error = f"templates.{part}: rendered nothing"  # channels refuse an empty message
        except templates.TemplateError as e:
            # A broken template must not cost an alert: say so, send the default.
            error = f"templates.{part}: {e.message or type(e).__name__}"
        errors.append(error)
        log.warning("subscription %s: %s; sent the default message", sub.name, error)
    return templates.render(default, variables, html=html)


def render_digest(
    sub: Subscription, items: list[Notification], window_end: datetime, digest_id: str
) -> Notification:
    """One message for a rate-limit window's overflow: each held message's title, in order."""
    n = len(items)
    most_urgent = max((i.notify_type for i in items), key=_urgency, default="info")
    levels = list(urgency.Urgency)
    loudest = max(
        (i.urgency for i in items), key=lambda u: levels.index(urgency.Urgency(u)), default="normal"
    )
    limit = sub.rate_limit
    per = f"{limit.count} per {_duration(limit.window)}" if limit else "the rate limit"
    lines = [f"{n} more notification(s) held back by the rate limit ({per}):", ""]
    for item in items:
        lines.append(f"- {item.at:%H:%M:%S} UTC  {item.title}")
    incidents = list(dict.fromkeys(i.incident_id for i in items if i.incident_id))
    return Notification(
        event_id=digest_id,
        incident_id=incidents[0] if len(incidents) == 1 else "",
        related=incidents,
        subscription_id=sub.id,
        kind=NoticeKind.DIGEST,
        title=f"[DIGEST] {n} more notification(s) until {window_end:%H:%M:%S} UTC",
        body="\n".join(lines),
        notify_type=most_urgent,
        format="text",
        urgency=loudest,
    )


def render_test(sub: Subscription) -> Notification:
    return Notification(
        event_id="test",
        incident_id="",
        subscription_id=sub.id,
        kind=NoticeKind.TEST,
        title=f"[TEST] redalert test message for {sub.name}",
        body="If you can read this, redalert can reach this target.",
        notify_type="info",
        format="text",
    )


def _urgency(notify_type: str) -> int:
    return URGENCY.index(notify_type) if notify_type in URGENCY else 0


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
