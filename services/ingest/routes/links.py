"""The signed ack/resolve links carried by notifications.

GET shows a small confirmation page and changes nothing — chat and mail clients fetch links to
preview them, and a preview must not acknowledge an incident. The page's button POSTs back to
the same signed URL, which publishes the command. The signature is the credential: no token.
A link works once, and only while the incident is still where it was when the message was sent
(shared/links.py); otherwise 410 and a page saying why.
"""

import html
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from services.ingest.audit import note
from services.ingest.context import Context, ctx
from services.ingest.routes.incidents import act
from shared.links import claim_use, link_secret, moved_on, used_at, verify
from shared.models import CommandAction, Incident, IncidentEvent

router = APIRouter(tags=["incidents"])

LINK_ACTOR = "link"  # who acts through a signed link: whoever holds it
VERBS = {"ack": "Acknowledge", "resolve": "Resolve"}
DONE = {"ack": "acknowledged", "resolve": "resolved"}


def page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    """A small HTML page: what a person who opened an action link sees."""
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<meta name='viewport' content='width=device-width'></head>"
        f"<body style='font-family:sans-serif;max-width:40em;margin:2em auto'>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status_code,
    )


@dataclass(frozen=True)
class SignedLink:
    incident_id: str
    action: str
    version: int
    expires: int
    sig: str


def signed_link(
    incident_id: str,
    action: str,
    v: int = Query(..., ge=0, le=10**12, description="the incident's version it was sent about"),
    expires: int = Query(..., ge=0, le=10**12, description="unix time the link stops working"),
    sig: str = Query(..., max_length=128, description="HMAC-SHA256 of id:action:v:expires"),
) -> SignedLink:
    return SignedLink(incident_id, action, v, expires, sig)


def stamp(ts: float) -> str:
    """When, for a person: `2026-12-01 09:30 UTC`."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


ONCE = (
    "Links in notifications work once, and only while the incident is as it was when the "
    "message was sent: use the latest message, or the API."
)


def gone(why: str, incident: Incident | None = None, rule: str = ONCE) -> HTMLResponse:
    """410, for an action link that no longer means what it meant when it was sent."""
    now = (
        f"<p>The incident is now <b>{html.escape(incident.status.value)}</b> "
        f"({html.escape(incident.severity.label)}).</p>"
        if incident is not None
        else ""
    )
    return page("This link no longer works", f"<p>{html.escape(why)}.</p>{now}<p>{rule}</p>", 410)


async def _timeline(c: Context, incident_id: str) -> list[IncidentEvent]:
    raw = await c.redis.lrange(c.keys.incident_timeline(incident_id), 0, -1)
    return [IncidentEvent.model_validate_json(r) for r in raw]


async def _refusal(c: Context, link: SignedLink) -> tuple[HTMLResponse | None, Incident | None]:
    """The page to answer when the link must not be used (None when it is good), and the
    incident it is about."""
    secret = await link_secret(c.redis, c.settings)
    problem = verify(secret, link.incident_id, link.action, link.version, link.expires, link.sig)
    if problem is not None:
        code, why = problem
        if code == 410:
            return gone(f"It has expired ({stamp(link.expires)})"), None
        title = "Unknown action" if code == 404 else "This link does not work"
        return page(title, f"<p>{html.escape(why)}.</p>", code), None
    incident = await c.incidents.get(link.incident_id)
    if incident is None:
        return page("No such incident", f"<p>{html.escape(link.incident_id)}</p>", 404), None
    if (used := await used_at(c.redis, c.keys, link.sig)) is not None:
        return gone(f"It was already used ({stamp(used)})", incident), incident
    later = moved_on(link.action, link.version, await _timeline(c, link.incident_id))
    if later is not None:
        who = f" by {later.command.actor}" if later.command is not None else ""
        why = f"The incident was {later.kind.value}{who} ({stamp(later.at.timestamp())}) "
        return gone(why + "after this message was sent", incident), incident
    return None, incident


# Every answer is a page for a person: what happened, or why the link does not work.
PAGES: dict[int | str, dict[str, Any]] = {
    code: {"description": why, "content": {"text/html": {"schema": {"type": "string"}}}}
    for code, why in (
        (202, "done"),
        (403, "the signature does not match"),
        (404, "no such action or incident"),
        (410, "used, expired, or the incident moved on"),
    )
}


@router.get(
    "/v1/incidents/{incident_id}/{action}/link",
    response_class=HTMLResponse,
    responses={k: v for k, v in PAGES.items() if k != 202},
)
async def confirm_page(
    link: SignedLink = Depends(signed_link), c: Context = Depends(ctx)
) -> HTMLResponse:
    refusal, incident = await _refusal(c, link)
    if refusal is not None:
        return refusal
    assert incident is not None
    verb = VERBS[link.action]
    return page(
        f"{verb} incident {link.incident_id}?",
        f"<p><b>{html.escape(incident.title)}</b></p>"
        f"<p>Now: {incident.severity.label}, {incident.status.value}.</p>"
        "<form method='post'>"
        "<p><label>Your name <input name='actor' required maxlength='200'></label></p>"
        "<p><label>Note <input name='note' maxlength='2000' size='40'></label></p>"
        f"<p><button type='submit'>{verb}</button></p></form>",
    )


@router.post(
    "/v1/incidents/{incident_id}/{action}/link", response_class=HTMLResponse, responses=PAGES
)
async def act_by_link(
    request: Request, link: SignedLink = Depends(signed_link), c: Context = Depends(ctx)
) -> HTMLResponse:
    refusal, incident = await _refusal(c, link)
    if refusal is not None:
        return refusal
    if not await claim_use(c.redis, c.keys, link.sig, link.expires, time.time()):
        return gone("It was used a moment ago", incident)  # two clicks at once: one wins
    form = parse_qs((await request.body()).decode(errors="replace"))
    # The link is the credential, not a person: the actor is "link", the name typed is kept beside.
    claimed = (form.get("actor") or [""])[0].strip()[:200] or None
    text = (form.get("note") or [""])[0].strip()[:2000] or None
    incident_id, action = link.incident_id, link.action
    note(request, actor=LINK_ACTOR, claimed=claimed, changes={"action": action, "note": text})
    await act(c, incident_id, CommandAction(action), LINK_ACTOR, text, via="link", claimed=claimed)
    thanks = f"<p>Thank you, {html.escape(claimed)}.</p>" if claimed else ""
    return page(f"Incident {incident_id} {DONE[action]}", thanks, 202)
