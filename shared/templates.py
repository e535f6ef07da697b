"""Subscription message templates (Jinja2), sandboxed: templates come from API users.

The variables a template sees are built here, once, so the README, the validation of a new
subscription and notify's rendering all agree on them.
"""

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from shared.models import Incident, IncidentEvent, Post
from shared.severity import Severity

__all__ = ["TemplateError", "check", "context", "render"]


@lru_cache(maxsize=2)
def _environment(html: bool) -> SandboxedEnvironment:
    # StrictUndefined: a misspelt variable is an error at validation, not a silent blank message.
    return SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=html, trim_blocks=True, lstrip_blocks=True
    )


@lru_cache(maxsize=1024)
def _compiled(source: str, html: bool) -> Any:
    return _environment(html).from_string(source)


def render(source: str, variables: dict[str, Any], *, html: bool = False) -> str:
    """Render a template; raises TemplateError (syntax, undefined variable, sandbox)."""
    return str(_compiled(source, html).render(variables)).strip()


def context(
    event: IncidentEvent,
    *,
    kind: str,
    tag: str,
    links: dict[str, str | None],
    subscription: str,
) -> dict[str, Any]:
    """What a template can use: `incident`, `event`, `post`, `kind`, `tag`, `links`, …"""
    incident = event.incident
    post = event.post
    return {
        "incident": {
            "id": incident.id,
            "title": incident.title,
            "status": incident.status.value,
            "severity": incident.severity.label,
            "severity_id": incident.severity.value,
            "peak_severity": incident.peak_severity.label,
            "topics": incident.topics,
            "sources": incident.sources,
            "post_count": incident.post_count,
            "opened_at": incident.opened_at.isoformat(),
            "acknowledged_by": incident.acknowledged_by,
        },
        "event": {"id": event.id, "kind": event.kind.value, "reason": event.reason},
        "post": None
        if post is None
        else {
            "author": post.author or post.source,
            "source": post.source,
            "text": post.text,
            "url": post.url,
        },
        "kind": kind,
        "tag": tag,
        "severity": incident.severity.label,
        "links": links,
        "subscription": subscription,
    }


def sample_context() -> dict[str, Any]:
    now = datetime.now(UTC)
    incident = Incident(
        id="0a1b2c3d4e5f",
        title="ISS: there is a leak coming from the radiator on MLM",
        severity=Severity.RED_ALERT,
        peak_severity=Severity.RED_ALERT,
        topics=["iss"],
        sources=["mastodon"],
        opened_at=now,
        updated_at=now,
        post_count=1,
        version=1,
    )
    event = IncidentEvent(
        id="0a1b2c3d4e5f:1",
        kind="opened",
        incident=incident,
        reason="opened at red alert",
        post=Post(source="mastodon", author="watcher", text=incident.title),
    )
    base = "https://redalert.example/v1/incidents/0a1b2c3d4e5f"
    links = {"incident": base, "ack": f"{base}/ack/link", "resolve": f"{base}/resolve/link"}
    return context(event, kind="firing", tag="RED ALERT", links=links, subscription="sample")


def check(source: str, *, html: bool = False) -> str | None:
    """None when the template renders on a sample incident; otherwise what is wrong."""
    try:
        render(source, sample_context(), html=html)
    except TemplateError as e:
        line = getattr(e, "lineno", None)
        where = f"line {line}: " if line else ""
        return f"{where}{e.message or type(e).__name__}"
    return None
