"""The console's operations pages: silences, subscriptions, sources and dead letters.

Each change goes through the same function the API route uses, so the console can do nothing
the API would refuse; a refusal is shown on the page instead of as JSON.
"""

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from services.ingest.console.base import acting, render, viewer
from services.ingest.console.session import Session
from services.ingest.context import Context, ctx
from services.ingest.errors import field_errors, summary
from services.ingest.routes import deadletter as dl_api
from services.ingest.routes import sources as sources_api
from services.ingest.routes import subscriptions as subs_api
from services.ingest.routes.subscriptions import sender
from services.notify.circuit import CircuitStore
from shared.silences import Matchers, SilenceSpec, SilenceStore
from shared.subscriptions import public

router = APIRouter(include_in_schema=False)


def _problem(e: Exception) -> str:
    if isinstance(e, RequestValidationError):
        return summary(field_errors(e.errors()))
    if isinstance(e, ValidationError):
        return summary(field_errors(e.errors()))
    if isinstance(e, HTTPException):
        return str(e.detail)
    return str(e)


# --- silences ------------------------------------------------------------------------------------

MATCHERS = ("topic", "source", "incident_id", "subscription")  # and labels: {team="db", …}


def _matchers(draft: dict[str, str]) -> Matchers:
    return Matchers(
        **{m: draft[m].strip() or None for m in MATCHERS}, labels=draft["labels"].strip() or []
    )


async def _matching(c: Context, matchers: Matchers) -> dict[str, list[Any]]:
    """What a silence would hold back: the open incidents and subscriptions its matchers fit."""
    incidents = [i for i in await c.incidents.list(limit=500) if i.is_open]
    subs = await c.subscriptions.all()
    pairs = [(i, s) for i in incidents for s in subs if matchers.match(i, s)]
    return {
        "incidents": list({i.id: i for i, _ in pairs}.values()),
        "subscriptions": list({s.id: s for _, s in pairs}.values()),
        "pairs": pairs,
    }


@router.get("/silences", response_class=HTMLResponse)
async def silences_page(
    request: Request, session: Session = Depends(viewer), c: Context = Depends(ctx)
) -> HTMLResponse:
    q = request.query_params
    draft = {m: q.get(m, "") for m in (*MATCHERS, "labels")} | {
        "duration": q.get("duration", "2h"),
        "comment": q.get("comment", ""),
        "replaces": q.get("replaces", ""),
    }
    preview, error = None, ""
    if q.get("preview"):
        try:
            matchers = _matchers(draft)
            preview = await _matching(c, matchers)
        except ValidationError as e:
            error = _problem(e)
    return await _silences(request, session, c, draft, preview, error)


async def _silences(
    request: Request,
    session: Session,
    c: Context,
    draft: dict[str, str],
    preview: dict[str, Any] | None,
    error: str,
    status_code: int = 200,
) -> HTMLResponse:
    now = datetime.now(UTC)
    listed = [
        {**s.model_dump(), "state": s.state(now).value}
        for s in await SilenceStore(c.redis, c.keys).all()
    ]
    return render(
        request,
        session,
        "silences.html",
        status_code,
        silences=listed,
        draft=draft,
        preview=preview,
        error=error,
        matcher_names=MATCHERS,
    )


@router.post("/silences")
async def create_silence(
    request: Request,
    c: Context = Depends(ctx),
    csrf: str = Form(""),
    topic: str = Form(""),
    source: str = Form(""),
    incident_id: str = Form(""),
    subscription: str = Form(""),
    labels: str = Form("", max_length=2_000),
    duration: str = Form("2h"),
    comment: str = Form(""),
    replaces: str = Form(""),
) -> Response:
    session = await acting(request, "silence", csrf)
    store = SilenceStore(c.redis, c.keys)
    draft = {
        "topic": topic,
        "source": source,
        "incident_id": incident_id,
        "subscription": subscription,
        "labels": labels,
        "duration": duration,
        "comment": comment,
        "replaces": replaces,
    }
    now = datetime.now(UTC)
    try:
        spec = SilenceSpec(
            matchers=_matchers(draft),
            duration=duration.strip(),
            author=session.who.name,
            comment=comment.strip(),
        )
        silence = spec.to_silence(now)
    except (ValidationError, ValueError) as e:
        return await _silences(request, session, c, draft, None, _problem(e), 422)
    await store.put(silence)
    if replaces:  # editing a silence: the new one takes over, the old one ends
        old = await store.get(replaces)
        if old is not None and old.ends_at > now:
            await store.expire(old, session.who.name, now)
    return RedirectResponse(f"/silences#silence-{silence.id}", status_code=303)


@router.post("/silences/{silence_id}/expire")
async def expire_silence(
    request: Request, silence_id: str, csrf: str = Form(""), c: Context = Depends(ctx)
) -> Response:
    session = await acting(request, "silence", csrf)
    store = SilenceStore(c.redis, c.keys)
    silence = await store.get(silence_id)
    if silence is None:
        raise HTTPException(404, f"no silence {silence_id!r}")
    now = datetime.now(UTC)
    if silence.ends_at > now:
        await store.expire(silence, session.who.name, now)
    return RedirectResponse(f"/silences#silence-{silence_id}", status_code=303)


# --- subscriptions -------------------------------------------------------------------------------

EXAMPLE_SUBSCRIPTION = {
    "name": "on-call",
    "urls": ["json://127.0.0.1:9000/hook"],
    "min_severity": "red_alert",
    "topics": [],
}


async def _subscriptions(c: Context) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    circuits = await CircuitStore(c.redis, c.keys).all()
    out = []
    for sub in await c.subscriptions.all():
        shown = public(sub)
        mine = [ci.public(now) for ci in circuits if ci.subscription_id == sub.id]
        editable = {k: v for k, v in shown.items() if k not in subs_api._READ_ONLY}
        out.append({"sub": shown, "circuits": mine, "json": json.dumps(editable, indent=2)})
    return out


@router.get("/subscriptions", response_class=HTMLResponse)
async def subscriptions_page(
    request: Request, session: Session = Depends(viewer), c: Context = Depends(ctx)
) -> HTMLResponse:
    return render(
        request,
        session,
        "subscriptions.html",
        subscriptions=await _subscriptions(c),
        example=json.dumps(EXAMPLE_SUBSCRIPTION, indent=2),
        message=request.query_params.get("message", ""),
        error="",
        draft=None,
    )


@router.post("/subscriptions")
async def save_subscription(
    request: Request,
    c: Context = Depends(ctx),
    csrf: str = Form(""),
    sub_id: str = Form(""),
    body: str = Form(..., max_length=100_000),
) -> Response:
    """Create (no id) or replace a subscription from its JSON; masked secrets are kept."""
    session = await acting(request, "subscriptions", csrf)
    try:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("body: a JSON object, like the example")
        if sub_id:
            await subs_api.replace_subscription(sub_id=sub_id, request=request, body=data, c=c)
        else:
            spec = subs_api.SubscriptionSpec.model_validate(data)
            await subs_api.create_subscription(spec=spec, request=request, c=c)
    except (ValueError, ValidationError, RequestValidationError, HTTPException) as e:
        problem = f"body: not JSON: {e}" if isinstance(e, json.JSONDecodeError) else _problem(e)
        return render(
            request,
            session,
            "subscriptions.html",
            422,
            subscriptions=await _subscriptions(c),
            example=json.dumps(EXAMPLE_SUBSCRIPTION, indent=2),
            message="",
            error=problem,
            draft={"id": sub_id, "body": body},
        )
    return RedirectResponse("/subscriptions?message=Saved.", status_code=303)


@router.post("/subscriptions/{sub_id}/test")
async def send_test_message(
    request: Request, sub_id: str, csrf: str = Form(""), c: Context = Depends(ctx)
) -> Response:
    await acting(request, "subscriptions", csrf)
    result = await subs_api.send_test_message(sub_id=sub_id, c=c, send=sender(request))
    told = "; ".join(f"{r['url']}: {'ok' if r['ok'] else r['error']}" for r in result["results"])
    return RedirectResponse(f"/subscriptions?message=Test message: {told}", status_code=303)


@router.post("/subscriptions/{sub_id}/delete")
async def delete_subscription(
    request: Request, sub_id: str, csrf: str = Form(""), c: Context = Depends(ctx)
) -> Response:
    await acting(request, "subscriptions", csrf)
    await subs_api.delete_subscription(sub_id=sub_id, c=c)
    return RedirectResponse("/subscriptions?message=Deleted.", status_code=303)


# --- sources -------------------------------------------------------------------------------------


@router.get("/sources", response_class=HTMLResponse)
async def sources_page(request: Request, session: Session = Depends(viewer)) -> HTMLResponse:
    listed = await sources_api.list_sources(sources_api.poller(request))
    return render(
        request,
        session,
        "sources.html",
        sources=listed,
        message=request.query_params.get("message", ""),
    )


@router.post("/sources/{name}/poll")
async def poll_source(request: Request, name: str, csrf: str = Form("")) -> Response:
    await acting(request, "sources", csrf)
    try:
        outcome = await sources_api.poll_source(name, sources_api.poller(request))
        message = f"Polled {name}: {outcome['summary']}"
    except HTTPException as e:
        message = f"{name}: {e.detail}"
    return RedirectResponse(f"/sources?message={message}", status_code=303)


# --- dead letters --------------------------------------------------------------------------------


@router.get("/deadletters", response_class=HTMLResponse)
async def deadletters_page(
    request: Request, session: Session = Depends(viewer), c: Context = Depends(ctx)
) -> HTMLResponse:
    letters = await dl_api.list_letters(100, None, dl_api.letters(c, sender(request)))
    return render(
        request,
        session,
        "deadletters.html",
        letters=letters,
        message=request.query_params.get("message", ""),
    )


@router.post("/deadletters/{letter_id}/replay")
async def replay_letter(
    request: Request, letter_id: str, csrf: str = Form(""), c: Context = Depends(ctx)
) -> Response:
    await acting(request, "deadletter", csrf)
    try:
        result = await dl_api.replay_letter(letter_id, False, dl_api.letters(c, sender(request)))
        ok = result.get("ok", True)
        message = "Replayed." if ok else f"Replay failed: {result.get('error', '')}"
    except HTTPException as e:
        message = f"Not replayed: {e.detail}"
    return RedirectResponse(f"/deadletters?message={message}", status_code=303)
