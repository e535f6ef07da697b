"""The signed ack/resolve links carried by notifications.

GET shows a small confirmation page and changes nothing — chat and mail clients fetch links to
preview them, and a preview must not acknowledge an incident. The page's button POSTs back to
the same signed URL, which publishes the command. The signature is the credential: no token.
"""

import html
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from services.ingest.context import Context, ctx
from services.ingest.routes.incidents import act
from shared.links import ACTIONS, link_secret, verify
from shared.models import CommandAction

router = APIRouter(tags=["incidents"])

VERBS = {"ack": "Acknowledge", "resolve": "Resolve"}


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<meta name='viewport' content='width=device-width'></head>"
        f"<body style='font-family:sans-serif;max-width:40em;margin:2em auto'>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status_code,
    )


async def _refusal(
    c: Context, incident_id: str, action: str, expires: int, sig: str
) -> HTMLResponse | None:
    """The page to answer when the link must not be used; None when it is good."""
    if action not in ACTIONS:
        return _page("Unknown action", f"<p>{html.escape(action)} is not an action.</p>", 404)
    secret = await link_secret(c.redis, c.settings)
    if problem := verify(secret, incident_id, action, expires, sig):
        return _page("This link does not work", f"<p>{html.escape(problem)}.</p>", 403)
    return None


@router.get("/v1/incidents/{incident_id}/{action}/link", response_class=HTMLResponse)
async def confirm_page(
    incident_id: str,
    action: str,
    expires: int = Query(...),
    sig: str = Query(..., max_length=128),
    c: Context = Depends(ctx),
) -> HTMLResponse:
    if refusal := await _refusal(c, incident_id, action, expires, sig):
        return refusal
    incident = await c.incidents.get(incident_id)
    if incident is None:
        return _page("No such incident", f"<p>{html.escape(incident_id)}</p>", 404)
    verb = VERBS[action]
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
    incident_id: str,
    action: str,
    request: Request,
    expires: int = Query(...),
    sig: str = Query(..., max_length=128),
    c: Context = Depends(ctx),
) -> HTMLResponse:
    if refusal := await _refusal(c, incident_id, action, expires, sig):
        return refusal
    form = parse_qs((await request.body()).decode(errors="replace"))
    actor = (form.get("actor") or ["someone with the link"])[0].strip()[:200] or "someone"
    note = (form.get("note") or [""])[0].strip()[:2000] or None
    await act(c, incident_id, CommandAction(action), actor, note, via="link")
    done = {"ack": "acknowledged", "resolve": "resolved"}[action]
    return _page(f"Incident {incident_id} {done}", f"<p>Thank you, {html.escape(actor)}.</p>", 202)
