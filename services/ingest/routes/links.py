"""The signed ack/resolve links carried by notifications.

GET shows a small confirmation page and changes nothing — chat and mail clients fetch links to
preview them, and a preview must not acknowledge an incident. The page's button POSTs back to
the same signed URL, which publishes the command. The signature is the credential: no token.
"""

import html
from dataclasses import dataclass
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from services.ingest.audit import note
from services.ingest.context import Context, ctx
from services.ingest.routes.incidents import act
from shared.links import ACTIONS, link_secret, verify
from shared.models import CommandAction

router = APIRouter(tags=["incidents"])

LINK_ACTOR = "link"  # who acts through a signed link: whoever holds it
VERBS = {"ack": "Acknowledge", "resolve": "Resolve"}


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
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
    expires: int
    sig: str


def signed_link(
    incident_id: str,
    action: str,
    expires: int = Query(..., description="unix time the link stops working"),
    sig: str = Query(..., max_length=128, description="HMAC-SHA256 of id:action:expires"),
) -> SignedLink:
    return SignedLink(incident_id, action, expires, sig)


async def _refusal(c: Context, link: SignedLink) -> HTMLResponse | None:
    """The page to answer when the link must not be used; None when it is good."""
    if link.action not in ACTIONS:
        return _page("Unknown action", f"<p>{html.escape(link.action)} is not an action.</p>", 404)
    secret = await link_secret(c.redis, c.settings)
    if problem := verify(secret, link.incident_id, link.action, link.expires, link.sig):
        return _page("This link does not work", f"<p>{html.escape(problem)}.</p>", 403)
    return None


@router.get("/v1/incidents/{incident_id}/{action}/link", response_class=HTMLResponse)
async def confirm_page(
    link: SignedLink = Depends(signed_link), c: Context = Depends(ctx)
) -> HTMLResponse:
    if refusal := await _refusal(c, link):
        return refusal
    incident_id = link.incident_id
    incident = await c.incidents.get(incident_id)
    if incident is None:
        return _page("No such incident", f"<p>{html.escape(incident_id)}</p>", 404)
    verb = VERBS[link.action]
    return _page(
        f"{verb} incident {incident_id}?",
        f"<p><b>{html.escape(incident.title)}</b></p>"
        f"<p>Now: {incident.severity.label}, {incident.status.value}.</p>"
        "<form method='post'>"
        "<p><label>Your name <input name='actor' required maxlength='200'></label></p>"
        "<p><label>Note <input name='note' maxlength='2000' size='40'></label></p>"
        f"<p><button type='submit'>{verb}</button></p></form>",
    )


@router.post("/v1/incidents/{incident_id}/{action}/link", response_class=HTMLResponse)
async def act_by_link(
    request: Request, link: SignedLink = Depends(signed_link), c: Context = Depends(ctx)
) -> HTMLResponse:
    if refusal := await _refusal(c, link):
        return refusal
    form = parse_qs((await request.body()).decode(errors="replace"))
    # The link is the credential, not a person: the actor is "link", the name typed is kept beside.
    claimed = (form.get("actor") or [""])[0].strip()[:200] or None
    text = (form.get("note") or [""])[0].strip()[:2000] or None
    incident_id, action = link.incident_id, link.action
    note(request, actor=LINK_ACTOR, claimed=claimed, changes={"action": action, "note": text})
    await act(c, incident_id, CommandAction(action), LINK_ACTOR, text, via="link", claimed=claimed)
    done = {"ack": "acknowledged", "resolve": "resolved"}[action]
    thanks = f"<p>Thank you, {html.escape(claimed)}.</p>" if claimed else ""
    return _page(f"Incident {incident_id} {done}", thanks, 202)
