"""Corrections: an operator says what a post really was; `/v1/corrections` exports them.

The post is found where redalert keeps it: the incident it joined (named in the body, or
remembered for the post), else the recent `classified` stream; or its text is given.
"""

import json
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from services.ingest.context import Context, ctx
from services.ingest.contracts import Open
from shared import auth, keys
from shared.codec import DecodeError, decode
from shared.corrections import Correction, CorrectionStore, to_jsonl
from shared.models import Classification
from shared.severity import Severity

router = APIRouter(tags=["corrections"])

SCANNED = 10_000  # recent `classified` entries searched for a post no incident remembers
PAGE = 500


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Severity
    why: str = Field(default="", max_length=2_000)
    actor: str = Field(default="api", min_length=1, max_length=200, description="who corrects")
    incident_id: str | None = Field(default=None, max_length=200)
    text: str | None = Field(
        default=None, min_length=1, max_length=10_000, description="when redalert no longer has it"
    )


class Found(BaseModel):
    text: str
    author: str | None = None
    predicted: Severity | None = None
    rules_version: str | None = None
    incident_id: str | None = None


async def find_post(
    c: Context, source: str, post_id: str, incident_id: str | None = None
) -> Found | None:
    """A post redalert has seen: in its incident's posts, else in the recent `classified`."""
    if incident_id is None:
        remembered = await c.redis.get(c.keys.post_incident(f"{source}:{post_id}"))
        incident_id = remembered.decode() if remembered else None
    if incident_id is not None:
        for raw in await c.redis.lrange(c.keys.incident_posts(incident_id), 0, -1):
            p = json.loads(raw)
            if p["source"] == source and p["id"] == post_id:
                return Found(
                    text=p["text"],
                    author=p.get("author"),
                    predicted=p.get("severity"),
                    incident_id=incident_id,
                )
    stream = c.keys.stream(keys.CLASSIFIED)
    end = "+"
    for _ in range(SCANNED // PAGE):
        entries = await c.redis.xrevrange(stream, max=end, count=PAGE)
        for _, fields in entries:
            try:
                cl = decode(fields, Classification)
            except DecodeError:
                continue
            if cl.post.source == source and cl.post.id == post_id:
                return Found(
                    text=cl.post.text,
                    author=cl.post.author,
                    predicted=cl.severity,
                    rules_version=cl.rules_version or None,
                    incident_id=cl.incident_id,
                )
        if len(entries) < PAGE:
            break
        end = f"({entries[-1][0].decode()}"
    return None


async def label_post(
    c: Context,
    source: str,
    post_id: str,
    label: Severity,
    by: str,
    why: str = "",
    incident_id: str | None = None,
    text: str | None = None,
) -> Correction:
    found = await find_post(c, source, post_id, incident_id)
    if found is None and text is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no post {source}:{post_id} among the incidents' posts or the last {SCANNED} "
            "classified: give its `text`",
        )
    found = found or Found(text=text or "", incident_id=incident_id)
    correction = Correction(
        source=source,
        id=post_id,
        text=text or found.text,
        author=found.author,
        label=label,
        predicted=found.predicted,
        rules_version=found.rules_version,
        incident_id=found.incident_id,
        by=by,
        why=why.strip(),
    )
    return await CorrectionStore(c.redis, c.keys).put(correction)


@router.post(
    "/v1/posts/{source}/{post_id}/label",
    status_code=201,
    summary="Correct a post's severity (stored with who, when and why)",
    response_model=Correction,
)
async def label(
    source: str,
    post_id: str,
    body: LabelIn,
    who: auth.Principal = Depends(auth.responder),
    c: Context = Depends(ctx),
) -> dict[str, Any]:
    """Who corrected is the token's name (the `actor` given counts only while no token exists)."""
    actor = who.actor(body.actor)
    correction = await label_post(
        c, source, post_id, body.label, actor, body.why, body.incident_id, body.text
    )
    return correction.model_dump(mode="json")


class LabelledLine(Open):
    """A line of the labelled set (tests/data/README.md), with who, when and why besides."""

    id: str = Field(description="source:id")
    label: Severity
    text: str
    source: str
    tags: list[str]
    by: str
    why: str
    at: str
    author: str | None = None
    predicted: Severity | None = None
    rules_version: str | None = None


class NdjsonResponse(PlainTextResponse):
    media_type = "application/x-ndjson"


@router.get(
    "/v1/corrections",
    response_model=list[LabelledLine],
    response_model_exclude_unset=True,
)
async def list_corrections(c: Context = Depends(ctx)) -> list[dict[str, Any]]:
    """Every correction, oldest first, in the labelled-set format (tests/data/README.md)."""
    return [x.labelled() for x in await CorrectionStore(c.redis, c.keys).all()]


@router.get("/v1/corrections.jsonl", response_class=NdjsonResponse)
async def export_corrections(c: Context = Depends(ctx)) -> PlainTextResponse:
    """The same as JSONL, one labelled post a line: `redalert rules eval` reads it as it is."""
    lines = [x.labelled() for x in await CorrectionStore(c.redis, c.keys).all()]
    return PlainTextResponse(to_jsonl(lines), media_type="application/x-ndjson")
