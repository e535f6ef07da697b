"""/v1/silences: hold matching alerts back for a while; when one ends, subscribers are told."""

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError

from services.ingest.context import Context, ctx, require_token
from shared.silences import Silence, SilenceSpec, SilenceStore

router = APIRouter(tags=["silences"])


def store(c: Context = Depends(ctx)) -> SilenceStore:
    return SilenceStore(c.redis, c.keys)


async def _existing(silences: SilenceStore, silence_id: str) -> Silence:
    silence = await silences.get(silence_id)
    if silence is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no silence {silence_id!r}")
    return silence


@router.post("/v1/silences", status_code=201, dependencies=[Depends(require_token)])
async def create_silence(
    spec: SilenceSpec, silences: SilenceStore = Depends(store)
) -> dict[str, Any]:
    now = datetime.now(UTC)
    try:
        silence = spec.to_silence(now)
    except ValueError as e:
        field, _, msg = str(e).partition(": ")
        raise RequestValidationError(
            [{"loc": ("body", field), "msg": msg, "type": "value_error"}]
        ) from None
    await silences.put(silence)
    return silence.public(now)


@router.get("/v1/silences")
async def list_silences(
    state: Literal["active", "pending", "expired"] | None = Query(None),
    silences: SilenceStore = Depends(store),
) -> list[dict[str, Any]]:
    """Newest first; `state` keeps only active, pending or expired ones."""
    now = datetime.now(UTC)
    return [s.public(now) for s in await silences.all() if state in (None, s.state(now).value)]


@router.get("/v1/silences/{silence_id}")
async def get_silence(silence_id: str, silences: SilenceStore = Depends(store)) -> dict[str, Any]:
    return (await _existing(silences, silence_id)).public(datetime.now(UTC))


@router.post("/v1/silences/{silence_id}/expire", dependencies=[Depends(require_token)])
async def expire_silence(
    silence_id: str,
    by: str = Body("anonymous", embed=True, min_length=1, max_length=200),
    silences: SilenceStore = Depends(store),
) -> dict[str, Any]:
    """End it now: what it held back is told at once (if the incident still fires)."""
    now = datetime.now(UTC)
    silence = await _existing(silences, silence_id)
    if silence.ends_at <= now:
        return silence.public(now)
    return (await silences.expire(silence, by, now)).public(now)
