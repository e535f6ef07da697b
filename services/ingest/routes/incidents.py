"""/v1/incidents: read incidents, and act on them (ack, resolve, reopen).

Actions are published to the `commands` stream; classify — the single writer of incident
state — applies them, and each shows in the incident's timeline.
"""

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from services.ingest.audit import note
from services.ingest.context import Context, ctx
from services.ingest.contracts import IncidentDetail, IncidentView
from shared import auth
from shared.auth import Principal
from shared.incidents import public
from shared.models import ArchivedIncident, CommandAction, IncidentCommand

router = APIRouter(tags=["incidents"])


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: str = Field(
        default="api",
        min_length=1,
        max_length=200,
        description="who acts; with a token, the token's name is recorded and this beside it",
    )
    note: str | None = Field(default=None, max_length=2_000)


class CommandAccepted(BaseModel):
    command_id: str
    incident_id: str
    action: CommandAction


@router.get("/v1/incidents", dependencies=[Depends(auth.viewer)], response_model=list[IncidentView])
async def list_incidents(
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
    c: Context = Depends(ctx),
) -> list[dict[str, Any]]:
    """Newest first."""
    return [public(i) for i in await c.incidents.list(limit=limit, offset=offset)]


class Archive(BaseModel):
    """A page of the archive, and the cursor of the next one (None at the end)."""

    incidents: list[ArchivedIncident]
    next: str | None = Field(description="pass it as `before` for the next page")


@router.get(
    "/v1/incidents/archive",
    dependencies=[Depends(auth.viewer)],
    response_model=Archive,
    response_model_exclude_unset=True,
)
async def list_archived(
    limit: int = Query(50, ge=1, le=500),
    before: str | None = Query(
        None, pattern=r"^\d+-\d+$", description="the `next` cursor of the previous page"
    ),
    c: Context = Depends(ctx),
) -> dict[str, Any]:
    """Incidents past their retention (`REDALERT_RETENTION_DAYS` after resolution): a summary
    of each, last archived first."""
    if before is not None:
        ms, seq = (int(part) for part in before.split("-"))
        if ms >= 2**64 or seq >= 2**64:  # not a stream id: Redis would refuse it
            raise RequestValidationError(
                [{"loc": ("query", "before"), "msg": "not a cursor", "type": "value_error"}]
            )
        if ms == seq == 0:  # nothing comes before the first id
            return {"incidents": [], "next": None}
    archived, cursor = await c.incidents.archived(limit=limit, before=before)
    return {"incidents": [a.model_dump(mode="json") for a in archived], "next": cursor}


@router.get(
    "/v1/incidents/{incident_id}",
    dependencies=[Depends(auth.viewer)],
    response_model=IncidentDetail,
)
async def get_incident(incident_id: str, c: Context = Depends(ctx)) -> dict[str, Any]:
    """The incident, its posts with their severities, its transitions, and who was told what."""
    detail = await c.incidents.detail(incident_id)
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id!r}")
    return detail


async def act(
    c: Context,
    incident_id: str,
    action: CommandAction,
    actor: str,
    note: str | None,
    via: str,
    claimed: str | None = None,
) -> CommandAccepted:
    if await c.incidents.get(incident_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id!r}")
    cmd = IncidentCommand(
        incident_id=incident_id, action=action, actor=actor, claimed=claimed, note=note, via=via
    )
    await c.publisher.command(cmd)
    return CommandAccepted(command_id=cmd.id, incident_id=incident_id, action=action)


@router.post(
    "/v1/incidents/{incident_id}/{action}",
    status_code=202,
    response_model=CommandAccepted,
    summary="Acknowledge, resolve or reopen an incident",
)
async def act_on_incident(
    incident_id: str,
    action: CommandAction,
    request: Request,
    body: Action | None = None,
    who: Principal = Depends(auth.responder),
    c: Context = Depends(ctx),
) -> CommandAccepted:
    """The actor recorded is the token's name; a name given in the body is kept beside it."""
    body = body or Action()
    actor = who.actor(body.actor)
    claimed = body.actor if who.authenticated and "actor" in body.model_fields_set else None
    note(request, claimed=claimed, changes={"action": action.value, "note": body.note})
    return await act(c, incident_id, action, actor, body.note, via="api", claimed=claimed)
