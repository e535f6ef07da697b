"""Liveness and readiness."""

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from services.ingest.context import Context, ctx
from services.ingest.contracts import Health, Readiness
from shared.consumer import groups_present
from shared.redis import ping

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready: see status and groups"}},
)
async def readyz(c: Context = Depends(ctx)) -> Any:
    """Redis answers and every work stream has its consumer group."""
    if not await ping(c.redis):
        return JSONResponse(status_code=503, content={"status": "redis unreachable"})
    groups = await groups_present(c.redis, c.settings.namespace)
    ready = all(groups.values())
    body = {"status": "ready" if ready else "consumer groups missing", "groups": groups}
    return JSONResponse(status_code=200 if ready else 503, content=body)
