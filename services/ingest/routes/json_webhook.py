"""`POST /v1/webhooks/json/{name}`: any JSON a tool sends, read through its source's mapping.

A `json` source declares where the text, id, thread, severity, status and labels are
(services/ingest/sources/jsonmap.py); each event of the body becomes a post with the source's
`source`, its severity and status a `json` hint mapped by the rules file. Signed like webhook
sources: `X-Redalert-Signature: sha256=<hex HMAC-SHA256 of the body with the source's secret>`;
a missing or wrong signature is a 401 and nothing is published. An event the mapping cannot
read is a 422 naming the event and the field, and nothing of that body is published.
"""

import json
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status

from services.ingest.context import Context, ctx, verify_signed
from services.ingest.errors import unprocessable
from services.ingest.routes.posts import Accepted
from services.ingest.routes.sources import poller
from services.ingest.sources.jsonmap import MappingError
from services.ingest.sources.poller import Poller
from services.ingest.sources.spec import SourceKind
from shared.models import utcnow

router = APIRouter(tags=["webhooks"])


@router.post("/v1/webhooks/json/{name}", status_code=202, response_model=Accepted)
async def json_webhook(
    name: str, request: Request, c: Context = Depends(ctx), p: Poller = Depends(poller)
) -> Any:
    source = await p.store.get(name)
    if source is None or source.kind is not SourceKind.JSON or source.mapping is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no json source {name!r}")
    assert source.secret is not None  # required for json sources (spec)
    raw = await request.body()
    await verify_signed(c, source.secret.get_secret_value(), raw, request)
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return unprocessable([{"loc": ["body"], "msg": f"invalid JSON: {e}", "type": "json"}])
    try:
        posts = source.mapping.posts(body, source.label)
    except MappingError as e:
        return unprocessable([{"loc": ["body", e.where], "msg": e.message, "type": "mapping"}])
    accepted, duplicates = await c.publisher.posts(posts)
    await p.store.pushed(name, utcnow(), len(accepted))
    return {"accepted": accepted, "duplicates": duplicates}
