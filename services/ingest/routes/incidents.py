"""/v1/incidents: read incidents; their state is written by classify alone."""

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, status

from services.ingest.context import Context, ctx

router = APIRouter(tags=["incidents"])


@router.get("/v1/incidents")
async def list_incidents(
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
    c: Context = Depends(ctx),
) -> list[dict[str, Any]]:
    """Newest first."""
    return [i.model_dump(mode="json") for i in await c.incidents.list(limit=limit, offset=offset)]


@router.get("/v1/incidents/{incident_id}")
async def get_incident(incident_id: str, c: Context = Depends(ctx)) -> dict[str, Any]:
    """The incident, its posts with their severities, its transitions, and who was told what."""
    detail = await c.incidents.detail(incident_id)
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id!r}")
    return detail
