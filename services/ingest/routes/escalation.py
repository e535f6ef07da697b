"""/v1/escalation-policies, and the ack link each page carries (it acknowledges as its recipient).

A policy names only people, schedules and subscriptions that exist (422 naming the unknown
target, `body.steps.0.notify.1`). Policies run in notify (services/notify/escalation.py).

A page's link, `/v1/incidents/{id}/ack/as/{who}?expires=…&sig=…`, is signed with the namespace's
link secret over the incident, the recipient and the expiry (shared/escalation.py): GET shows a
confirmation page and changes nothing (link previews must not acknowledge), POST acknowledges as
`who`.
"""

import html
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse

from services.ingest.audit import note
from services.ingest.context import Context, ctx, require_token
from services.ingest.contracts import view_of
from services.ingest.routes.incidents import act
from services.ingest.routes.links import gone, page, stamp
from shared.escalation import MAX_POLICIES, Policy, PolicySpec, PolicyStore, verify_ack
from shared.links import claim_use, link_secret, moved_on, used_at
from shared.models import CommandAction, Incident, IncidentEvent
from shared.people import PeopleStore
from shared.schedules import ScheduleStore

router = APIRouter(tags=["escalation"])


PAGE_ONCE = (
    "A page's link works once, and only while the incident is as it was when the page was sent."
)


def _gone(why: str, incident: Incident | None = None) -> HTMLResponse:
    return gone(why, incident, PAGE_ONCE)


def policies(c: Context = Depends(ctx)) -> PolicyStore:
    return PolicyStore(c.redis, c.keys)


async def _unknown_targets(c: Context, spec: PolicySpec) -> None:
    people = await PeopleStore(c.redis, c.keys).names()
    schedules = {s.name for s in await ScheduleStore(c.redis, c.keys).all()}
    subs = {ref for s in await c.subscriptions.all() for ref in (s.id, s.name)}
    known = {"person": people, "schedule": schedules, "subscription": subs}
    for loc, kind, name in spec.targets():
        if name not in known[kind]:
            raise RequestValidationError(
                [{"loc": ("body", *loc), "msg": f"no {kind} {name!r}", "type": "value_error"}]
            )


PolicyView = view_of(Policy, "PolicyView", "An escalation policy.")
SHOWN: dict[str, Any] = {"response_model": PolicyView, "response_model_exclude_unset": True}


@router.post(
    "/v1/escalation-policies",
    status_code=201,
    dependencies=[Depends(require_token)],
    responses={200: {"model": PolicyView, "description": "Replaced"}},
    **SHOWN,
)
async def put_policy(
    spec: PolicySpec,
    response: Response,
    c: Context = Depends(ctx),
    store: PolicyStore = Depends(policies),
) -> dict[str, Any]:
    """Create a policy, or replace the one of that name (200)."""
    await _unknown_targets(c, spec)
    old = await store.get(spec.name)
    if old is None and await store.count() >= MAX_POLICIES:
        raise RequestValidationError(
            [{"loc": ("body", "name"), "msg": f"at most {MAX_POLICIES}", "type": "value_error"}]
        )
    policy = Policy(**spec.model_dump())
    if old is not None:
        policy = policy.model_copy(update={"created_at": old.created_at})
        response.status_code = status.HTTP_200_OK
    await store.put(policy)
    return policy.public()


@router.get(
    "/v1/escalation-policies",
    response_model=list[PolicyView],  # type: ignore[valid-type]
    response_model_exclude_unset=True,
)
async def list_policies(store: PolicyStore = Depends(policies)) -> list[dict[str, Any]]:
    """By priority, highest first: the order they are considered in."""
    return [p.public() for p in await store.all()]


@router.get("/v1/escalation-policies/{name}", **SHOWN)
async def get_policy(name: str, store: PolicyStore = Depends(policies)) -> dict[str, Any]:
    policy = await store.get(name)
    if policy is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no escalation policy {name!r}")
    return policy.public()


@router.delete(
    "/v1/escalation-policies/{name}", status_code=204, dependencies=[Depends(require_token)]
)
async def delete_policy(name: str, store: PolicyStore = Depends(policies)) -> Response:
    if not await store.delete(name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no escalation policy {name!r}")
    return Response(status_code=204)


# --- a page's own ack link --------------------------------------------------------------------


async def _refusal(
    c: Context, incident_id: str, who: str, v: int, expires: int, sig: str
) -> tuple[HTMLResponse | None, Incident | None]:
    """As for every action link (services/ingest/routes/links.py): the page to answer when the
    link must not be used — bad signature, expired, used, or the incident moved on since the
    page — or None; and the incident."""
    secret = await link_secret(c.redis, c.settings)
    problem = verify_ack(secret, incident_id, who, v, expires, sig)
    if problem is not None:
        code, why = problem
        if code == 410:
            return _gone(f"It has expired ({stamp(expires)})"), None
        return page("This link does not work", f"<p>{html.escape(why)}.</p>", code), None
    incident = await c.incidents.get(incident_id)
    if incident is None:
        return page("No such incident", f"<p>{html.escape(incident_id)}</p>", 404), None
    if (used := await used_at(c.redis, c.keys, sig)) is not None:
        return _gone(f"It was already used ({stamp(used)})", incident), incident
    raw = await c.redis.lrange(c.keys.incident_timeline(incident_id), 0, -1)
    later = moved_on("ack", v, [IncidentEvent.model_validate_json(r) for r in raw])
    if later is not None:
        by = f" by {later.command.actor}" if later.command is not None else ""
        why = f"The incident was {later.kind.value}{by} ({stamp(later.at.timestamp())}) "
        return _gone(why + "after this page was sent", incident), incident
    return None, incident


@router.get("/v1/incidents/{incident_id}/ack/as/{who}", response_class=HTMLResponse)
async def confirm_ack(
    incident_id: str,
    who: str,
    v: int = Query(..., ge=0, le=10**12),
    expires: int = Query(..., ge=0, le=10**12),
    sig: str = Query(..., max_length=128),
    c: Context = Depends(ctx),
) -> HTMLResponse:
    refusal, incident = await _refusal(c, incident_id, who, v, expires, sig)
    if refusal is not None:
        return refusal
    assert incident is not None
    return page(
        f"Acknowledge incident {incident_id} as {who}?",
        f"<p><b>{html.escape(incident.title)}</b></p>"
        f"<p>Now: {incident.severity.label}, {incident.status.value}.</p>"
        "<form method='post'>"
        "<p><label>Note <input name='note' maxlength='2000' size='40'></label></p>"
        f"<p><button type='submit'>Acknowledge as {html.escape(who)}</button></p></form>",
    )


@router.post("/v1/incidents/{incident_id}/ack/as/{who}", response_class=HTMLResponse)
async def ack_as(
    request: Request,
    incident_id: str,
    who: str,
    v: int = Query(..., ge=0, le=10**12),
    expires: int = Query(..., ge=0, le=10**12),
    sig: str = Query(..., max_length=128),
    c: Context = Depends(ctx),
) -> HTMLResponse:
    refusal, incident = await _refusal(c, incident_id, who, v, expires, sig)
    if refusal is not None:
        return refusal
    if not await claim_use(c.redis, c.keys, sig, expires, time.time()):
        return _gone("It was used a moment ago", incident)
    form = parse_qs((await request.body()).decode(errors="replace"))
    text = (form.get("note") or [""])[0].strip()[:2000] or None
    # The signature binds the recipient's name: the link acts as the person it was sent to.
    note(request, actor=who, changes={"action": "ack", "via": "page", "note": text})
    await act(c, incident_id, CommandAction.ACK, who, text, via="page")
    return page(
        f"Incident {incident_id} acknowledged", f"<p>Thank you, {html.escape(who)}.</p>", 202
    )
