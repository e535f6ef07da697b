"""/v1/deadletter: what could not be processed or delivered, and replaying it."""

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import Field

from services.ingest.context import Context, ctx
from services.ingest.contracts import Open, view_of
from services.ingest.routes.subscriptions import sender
from services.notify.replay import DeadLetters, ReplayError
from services.notify.send import Sender
from shared import auth
from shared.models import DeadLetter

router = APIRouter(tags=["deadletter"])


def letters(c: Context = Depends(ctx), send: Sender = Depends(sender)) -> DeadLetters:
    return DeadLetters(c.redis, c.settings, send)


DeadLetterView = view_of(
    DeadLetter,
    "DeadLetterView",
    "A dead letter, and its last replay (if any).",
    replayed=(dict[str, Any] | None, Field(default=None, description="at, ok, …")),
)
SHOWN: dict[str, Any] = {"response_model": DeadLetterView, "response_model_exclude_unset": True}


class Replayed(Open):
    """A replay's outcome: a delivery's names `subscription`, `url` (masked), `attempts` and
    `error`; an entry's names the `stream` and the new `entry_id`."""

    id: str
    ok: bool


@router.get(
    "/v1/deadletter",
    dependencies=[Depends(auth.viewer)],
    response_model=list[DeadLetterView],  # type: ignore[valid-type]
    response_model_exclude_unset=True,
)
async def list_letters(
    limit: int = Query(50, ge=1, le=1000),
    stream: str | None = Query(None, description="only letters from this stream"),
    dl: DeadLetters = Depends(letters),
) -> list[dict[str, Any]]:
    """Newest first."""
    return [letter.public() for letter in await dl.list(limit, stream)]


@router.get("/v1/deadletter/{letter_id}", dependencies=[Depends(auth.viewer)], **SHOWN)
async def get_letter(letter_id: str, dl: DeadLetters = Depends(letters)) -> dict[str, Any]:
    found = await dl.find(letter_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter {letter_id!r}")
    return found.public()


@router.post(
    "/v1/deadletter/{letter_id}/replay",
    dependencies=[Depends(auth.admin)],
    response_model=Replayed,
    response_model_exclude_unset=True,
)
async def replay_letter(
    letter_id: str,
    force: bool = Query(False, description="replay even if it was replayed before"),
    dl: DeadLetters = Depends(letters),
) -> dict[str, Any]:
    """Send a dead-lettered delivery again, or publish a dead-lettered entry to its stream.

    200 with `ok: false` and the error when the target still fails (the letter stays).
    """
    try:
        return await dl.replay(letter_id, force=force)
    except ReplayError as e:
        raise HTTPException(e.status, str(e)) from None
