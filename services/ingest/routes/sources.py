"""/v1/sources: feeds and Mastodon timelines to poll, webhooks to accept; and signed pushes."""

import json
import time
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import Field

from services.ingest.audit import note
from services.ingest.context import Context, check_targets, ctx, verify_signed, within_cap
from services.ingest.contracts import Open, view_of
from services.ingest.errors import unprocessable
from services.ingest.routes.posts import Accepted, posts_or_refusal
from services.ingest.sources.poller import Poller
from services.ingest.sources.spec import Source, SourceKind, SourceSpec, public
from shared import auth
from shared.models import utcnow

router = APIRouter(tags=["sources"])


class SourceStatus(Open):
    """What the polls (or pushes) of a source did so far."""

    polls: int
    items_ingested: int
    consecutive_failures: int
    last_poll_at: str | None = None
    last_success_at: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    last_warning: str | None = None
    last_polled_by: str | None = None
    next_poll_at: str | None = None
    polling_now: str | None = Field(default=None, description="the replica polling it now")
    recent_errors: list[dict[str, Any]] = Field(default_factory=list)


SourceView = view_of(
    Source,
    "SourceView",
    "A source as the API shows it: secrets as ****, a URL's password masked, empty fields left "
    "out; with the `source` its posts carry and its status.",
    without=("token", "secret"),
    token=(str | None, None),
    secret=(str | None, None),
    source=str,
    status=SourceStatus,
)


class PollResult(Open):
    """What a poll did."""

    source: str
    ingested: int = 0
    duplicates: int = 0
    not_modified: bool = False
    error: str | None = None
    warnings: list[str] = Field(default_factory=list)
    next_poll_in_s: float | None = None
    busy: str | None = None
    summary: str


def poller(request: Request) -> Poller:
    return request.app.state.poller


async def _view(p: Poller, source: Source) -> dict[str, Any]:
    return {**public(source), "status": await p.store.status(source.name)}


async def _existing(p: Poller, name: str) -> Source:
    source = await p.store.get(name)
    if source is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no source {name!r}")
    return source


@router.post(
    "/v1/sources",
    status_code=201,
    dependencies=[Depends(auth.admin)],
    response_model=SourceView,
    response_model_exclude_unset=True,
)
async def create_source(
    spec: SourceSpec,
    request: Request,
    p: Poller = Depends(poller),
    c: Context = Depends(ctx),
) -> dict[str, Any]:
    """Add a source; a polled one is first polled at once."""
    cap = p.settings.max_sources
    await within_cap(c, c.keys.sources, cap, "sources", "REDALERT_MAX_SOURCES")
    if spec.url:
        await check_targets(p.settings, {("url",): spec.url})
    source = Source(**spec.model_dump(), origin="api")
    if not await p.store.add(source, now=time.time()):
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"name: a source named {spec.name!r} exists (delete it first)"
        )
    note(request, target=source.name, changes=public(source))
    return await _view(p, source)


@router.get(
    "/v1/sources",
    dependencies=[Depends(auth.viewer)],
    response_model=list[SourceView],  # type: ignore[valid-type]
    response_model_exclude_unset=True,
)
async def list_sources(p: Poller = Depends(poller)) -> list[dict[str, Any]]:
    """Every source with its status: last poll, last success, last error, items ingested."""
    return [await _view(p, s) for s in await p.store.all()]


@router.get(
    "/v1/sources/{name}",
    dependencies=[Depends(auth.viewer)],
    response_model=SourceView,
    response_model_exclude_unset=True,
)
async def get_source(name: str, p: Poller = Depends(poller)) -> dict[str, Any]:
    return await _view(p, await _existing(p, name))


@router.delete("/v1/sources/{name}", status_code=204, dependencies=[Depends(auth.admin)])
async def delete_source(name: str, p: Poller = Depends(poller)) -> None:
    if not await p.store.delete(name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no source {name!r}")


@router.post(
    "/v1/sources/{name}/poll",
    dependencies=[Depends(auth.admin)],
    response_model=PollResult,
    response_model_exclude_unset=True,
)
async def poll_source(name: str, p: Poller = Depends(poller)) -> dict[str, Any]:
    """Poll now, whatever the schedule or backoff says (after a poll in flight, if any);
    answers what the poll did."""
    source = await _existing(p, name)
    if not source.polled:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{name!r} is a {source.kind} source")
    outcome = await p.poll(name, wait_s=p.lease_ms / 1_000)  # a poll in flight ends first
    if outcome is None:  # deleted meanwhile
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no source {name!r}")
    if outcome.busy:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{name!r} is being polled by {outcome.busy}")
    return {**asdict(outcome), "summary": outcome.summary()}


@router.post(
    "/v1/sources/{name}/posts",
    status_code=202,
    response_model=Accepted,
    summary="Push posts to a webhook source, signed with its secret",
)
async def push_posts(
    name: str, request: Request, c: Context = Depends(ctx), p: Poller = Depends(poller)
) -> Any:
    """The body of `POST /v1/posts`, signed: `X-Redalert-Signature: sha256=<hex HMAC-SHA256 of
    the body with the source's secret>`. Posts carry the source's `source`."""
    source = await p.store.get(name)
    if source is None or source.kind is not SourceKind.WEBHOOK or source.secret is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no webhook source {name!r}")
    raw = await request.body()
    await verify_signed(c, source.secret.get_secret_value(), raw, request)
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return unprocessable([{"loc": ["body"], "msg": f"invalid JSON: {e}", "type": "json"}])
    posts, refusal = posts_or_refusal(body)
    if refusal is not None:
        return refusal
    posts = [post.model_copy(update={"source": source.label}) for post in posts]
    accepted, duplicates = await c.publisher.posts(posts)
    await p.store.pushed(name, utcnow(), len(accepted))
    return Accepted(accepted=accepted, duplicates=duplicates)
