"""The console's incidents: the list (live), one incident's page, and acting on it."""

from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse

from services.classify.rules import ConfigError, Engine, compile_rules
from services.ingest.console.base import acting, render, viewer
from services.ingest.console.session import Session
from services.ingest.context import Context, ctx
from services.ingest.routes.corrections import label_post
from services.ingest.routes.incidents import act
from services.ingest.routes.rules import in_use
from shared.corrections import CorrectionStore
from shared.models import CommandAction, Incident, Post
from shared.severity import Severity

router = APIRouter(include_in_schema=False)

LISTED = 500  # the newest incidents the list filters from
STATUSES = ("active", "open", "acknowledged", "resolved", "all")


def matches(i: Incident, state: str, severity: str, q: str) -> bool:
    """The list's filters: state (active = not resolved), lowest severity, words."""
    if state == "active" and not i.is_open:
        return False
    if state not in ("active", "all") and i.status.value != state:
        return False
    if severity and i.severity < Severity(severity):
        return False
    if q:
        hay = " ".join([i.title, i.id, *i.topics, *i.sources]).lower()
        return all(word in hay for word in q.lower().split())
    return True


async def _listed(c: Context, state: str, severity: str, q: str) -> list[Incident]:
    if state not in STATUSES:
        raise HTTPException(422, f"state: one of {', '.join(STATUSES)}")
    if severity and severity not in {s.value for s in Severity}:
        raise HTTPException(422, "severity: no_danger, assessing or red_alert")
    found = await c.incidents.list(limit=LISTED)
    return [i for i in found if matches(i, state, severity, q)]


@router.get("/", response_class=HTMLResponse)
async def incidents_page(
    request: Request,
    state: str = "active",
    severity: str = "",
    q: str = "",
    session: Session = Depends(viewer),
    c: Context = Depends(ctx),
) -> HTMLResponse:
    incidents = await _listed(c, state, severity, q)
    filters = {"state": state, "severity": severity, "q": q}
    return render(
        request, session, "incidents.html", incidents=incidents, filters=filters, states=STATUSES
    )


@router.get("/console/fragments/incidents", response_class=HTMLResponse)
async def incidents_rows(
    request: Request,
    state: str = "active",
    severity: str = "",
    q: str = "",
    session: Session = Depends(viewer),
    c: Context = Depends(ctx),
) -> HTMLResponse:
    """The list's rows alone: what the page fetches when the live stream says something moved."""
    incidents = await _listed(c, state, severity, q)
    return render(request, session, "_incident_rows.html", incidents=incidents)


@lru_cache(maxsize=4)
def engine_for(text: str) -> Engine:
    return compile_rules(text, "rules in use")


async def explained(c: Context, posts: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Each post with the rules in use's explanation of it (hits to highlight, verdict)."""
    try:
        doc = await in_use(c)
        engine = engine_for(doc.yaml)
    except (HTTPException, ConfigError):
        return "", [{**p, "hits": [], "now": None} for p in posts]
    out = []
    for p in posts:
        result = engine.classify(
            Post(id=p["id"], source=p["source"], text=p["text"], author=p.get("author"))
        )
        out.append({**p, "hits": result.hits, "now": result.severity.value})
    return engine.version, out


async def _detail(c: Context, incident_id: str) -> dict[str, Any]:
    detail = await c.incidents.detail(incident_id)
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id!r}")
    version, posts = await explained(c, detail["posts"])
    by_post = {(p["source"], p["id"]): p for p in posts}
    detail["rules_version"] = version
    detail["posts"] = posts
    store = CorrectionStore(c.redis, c.keys)
    detail["corrections"] = await store.of([f"{p['source']}:{p['id']}" for p in posts])
    detail["by_post"] = by_post
    detail["incident"] = Incident.model_validate(detail["incident"])
    return detail


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
async def incident_page(
    request: Request,
    incident_id: str,
    session: Session = Depends(viewer),
    c: Context = Depends(ctx),
) -> HTMLResponse:
    detail = await _detail(c, incident_id)
    return render(
        request, session, "incident.html", **detail, done=request.query_params.get("done")
    )


@router.get("/console/fragments/incidents/{incident_id}", response_class=HTMLResponse)
async def incident_fragment(
    request: Request,
    incident_id: str,
    session: Session = Depends(viewer),
    c: Context = Depends(ctx),
) -> HTMLResponse:
    detail = await _detail(c, incident_id)
    return render(request, session, "_incident_body.html", **detail)


@router.post("/incidents/{incident_id}/{action}")
async def incident_action(
    request: Request,
    incident_id: str,
    action: CommandAction,
    note: str = Form("", max_length=2_000),
    csrf: str = Form(""),
    c: Context = Depends(ctx),
) -> RedirectResponse:
    session = await acting(request, "incident", csrf)
    await act(c, incident_id, action, session.who.name, note.strip() or None, via="console")
    return RedirectResponse(f"/incidents/{incident_id}?done={action.value}", status_code=303)


@router.post("/posts/{source}/{post_id}/label")
async def label(
    request: Request,
    source: str,
    post_id: str,
    severity: Severity = Form(...),
    why: str = Form("", max_length=2_000),
    incident_id: str = Form(""),
    csrf: str = Form(""),
    c: Context = Depends(ctx),
) -> RedirectResponse:
    """An operator's correction of a post's severity; back to the incident it was seen in."""
    session = await acting(request, "label", csrf)
    await label_post(c, source, post_id, severity, session.who.name, why, incident_id or None)
    back = f"/incidents/{incident_id}#post-{source}-{post_id}" if incident_id else "/"
    return RedirectResponse(back, status_code=303)
