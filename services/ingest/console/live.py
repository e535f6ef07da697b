"""Live updates: the incident-events stream as Server-Sent Events.

Each connection reads the stream from where it stood when the page connected (sent as the first
event's id), so a reconnecting browser (EventSource sends Last-Event-ID) misses nothing. A
connection ends after LIFETIME_S and the browser reconnects: a server that is stopping is never
held up for long by open pages.
"""

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from services.ingest.console.base import viewer
from services.ingest.console.session import Session
from services.ingest.context import context_of
from shared import keys
from shared.codec import DecodeError, decode
from shared.models import IncidentEvent

router = APIRouter(include_in_schema=False)

LIFETIME_S = 25.0
BLOCK_MS = 1_000
_ENTRY_ID = re.compile(r"^\d+-\d+$")


def frame(event: str, data: dict[str, object], event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"


def summary(e: IncidentEvent) -> dict[str, object]:
    i = e.incident
    return {
        "incident_id": i.id,
        "kind": e.kind.value,
        "title": i.title,
        "severity": i.severity.value,
        "status": i.status.value,
    }


@router.get("/console/events")
async def events(request: Request, session: Session = Depends(viewer)) -> StreamingResponse:
    c = context_of(request)
    stream = c.keys.stream(keys.INCIDENT_EVENTS)
    closing: asyncio.Event | None = getattr(request.app.state, "closing", None)
    resume = request.headers.get("last-event-id", "")

    async def gen() -> AsyncIterator[str]:
        last = resume if _ENTRY_ID.match(resume) else None
        if last is None:
            newest = await c.redis.xrevrange(stream, count=1)
            last = newest[0][0].decode() if newest else "0-0"
        yield "retry: 1000\n" + frame("hello", {}, last)
        ends = time.monotonic() + LIFETIME_S
        while time.monotonic() < ends and not (closing and closing.is_set()):
            if await request.is_disconnected():
                return
            found = await c.live.xread({stream: last}, count=100, block=BLOCK_MS)
            if not found:
                yield ": still here\n\n"
                continue
            for entry_id, fields in found[0][1]:
                last = entry_id.decode()
                try:
                    event = decode(fields, IncidentEvent)
                except DecodeError:
                    continue
                yield frame("incident", summary(event), last)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(gen(), media_type="text/event-stream", headers=headers)
