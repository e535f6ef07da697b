"""/v1/audit: every change made through the API, newest first (admin only)."""

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query

from services.ingest.context import Context, ctx
from shared import auth
from shared.audit import AuditEntry

router = APIRouter(tags=["audit"])


@router.get("/v1/audit", dependencies=[Depends(auth.admin)], response_model=list[AuditEntry])
async def audit_trail(
    limit: int = Query(100, ge=1, le=1000),
    actor: str | None = Query(None, max_length=200, description="only this actor's changes"),
    action: str | None = Query(
        None, max_length=200, description="only actions containing this (e.g. subscriptions)"
    ),
    target: str | None = Query(None, max_length=200, description="only changes to this object"),
    since: datetime | None = Query(None, description="only changes at or after this time"),
    until: datetime | None = Query(None, description="only changes at or before this time"),
    c: Context = Depends(ctx),
) -> list[dict[str, Any]]:
    entries = await c.audit.list(
        limit=limit, actor=actor, action=action, target=target, since=since, until=until
    )
    return [e.model_dump(mode="json") for e in entries]
