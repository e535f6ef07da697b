"""/v1/silences: hold matching alerts back for a while; when one ends, subscribers are told."""

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError

from services.ingest.audit import note
from services.ingest.context import Context, ctx, within_cap
from services.ingest.contracts import view_of
from shared import auth
from shared.auth import Principal
from shared.silences import Silence, SilenceSpec, SilenceState, SilenceStore

router = APIRouter(tags=["silences"])

SilenceView = view_of(
    Silence,
    "SilenceView",
    "A silence, with its state now (empty fields left out).",
    state=SilenceState,
)
SHOWN: dict[str, Any] = {"response_model": SilenceView, "response_model_exclude_unset": True}


def store(c: Context = Depends(ctx)) -> SilenceStore:
    return SilenceStore(c.redis, c.keys)


async def _existing(silences: SilenceStore, silence_id: str) -> Silence:
    silence = await silences.get(silence_id)
    if silence is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no silence {silence_id!r}")
    return silence


@router.post("/v1/silences", status_code=201, **SHOWN)
async def create_silence(
    spec: SilenceSpec,
    request: Request,
    who: Principal = Depends(auth.responder),
    silences: SilenceStore = Depends(store),
    c: Context = Depends(ctx),
) -> dict[str, Any]:
    """The author recorded is the token's name (the `author` given is kept in the comment)."""
    await within_cap(
        c, c.keys.silences, c.settings.max_silences, "silences", "REDALERT_MAX_SILENCES"
    )
    now = datetime.now(UTC)
    if who.authenticated and spec.author != who.name:
        claimed = f"(author given: {spec.author}) "
        spec = spec.model_copy(
            update={"author": who.name, "comment": (claimed + spec.comment)[:2_000]}
        )
    try:
        silence = spec.to_silence(now)
    except ValueError as e:
        field, _, msg = str(e).partition(": ")
        raise RequestValidationError(
            [{"loc": ("body", field), "msg": msg, "type": "value_error"}]
        ) from None
    await silences.put(silence)
    note(request, target=silence.id, changes=silence.public(now))
    return silence.public(now)


@router.get(
    "/v1/silences",
    dependencies=[Depends(auth.viewer)],
    response_model=list[SilenceView],  # type: ignore[valid-type]
    response_model_exclude_unset=True,
)
async def list_silences(
    state: Literal["active", "pending", "expired"] | None = Query(None),
    silences: SilenceStore = Depends(store),
) -> list[dict[str, Any]]:
    """Newest first; `state` keeps only active, pending or expired ones."""
    now = datetime.now(UTC)
    return [s.public(now) for s in await silences.all() if state in (None, s.state(now).value)]


@router.get("/v1/silences/{silence_id}", dependencies=[Depends(auth.viewer)], **SHOWN)
async def get_silence(silence_id: str, silences: SilenceStore = Depends(store)) -> dict[str, Any]:
    return (await _existing(silences, silence_id)).public(datetime.now(UTC))


@router.post("/v1/silences/{silence_id}/expire", **SHOWN)
async def expire_silence(
    silence_id: str,
    request: Request,
    by: str = Body("anonymous", embed=True, min_length=1, max_length=200),
    who: Principal = Depends(auth.responder),
    silences: SilenceStore = Depends(store),
) -> dict[str, Any]:
    """End it now: what it held back is told at once (if the incident still fires). Who ended
    it is the token's name; `by` counts only while no token is in use."""
    now = datetime.now(UTC)
    if who.authenticated:
        note(request, claimed=by if by != "anonymous" else None)
        by = who.name
    silence = await _existing(silences, silence_id)
    if silence.ends_at <= now:
        return silence.public(now)
    return (await silences.expire(silence, by, now)).public(now)
