"""Grafana unified alerting's webhook contact point: `POST /v1/webhooks/grafana`.

Each alert of a notification becomes a post in the incident keyed by its `fingerprint`, its
labels the post's labels, and its hint (`grafana`: `status` firing/resolved and the `severity`
label) mapped by the rules file — so firing opens (or joins) the incident and resolved resolves
it, through the same tables and explanation as every structured source. Grafana repeats a firing
alert at each repeat interval: one alert, one post.

Signed: with REDALERT_GRAFANA_SECRET set, a request carries either Grafana's own signature (12.0+,
the contact point's "HMAC Signature" with that secret: `X-Grafana-Alerting-Signature`, bare hex
HMAC-SHA256 of the body — or of `<timestamp>:<body>` when the timestamp header is set to
`X-Grafana-Alerting-Signature-Timestamp`, then no older than 5 minutes), or redalert's
(`X-Redalert-Signature`, with or without `X-Redalert-Timestamp`: shared/signing.py). Either way a
signed request is acted on once: a replay answers 200 `{"replayed": true}` and does nothing.
Without the secret a responder's token applies.
"""

import hashlib
import hmac
import time
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from services.ingest.context import Context, Replayed, ctx, verify_signed
from services.ingest.errors import Invalid
from services.ingest.sources.text import clip
from shared import auth
from shared.labels import clean as clean_labels
from shared.models import Post, SourceHint

router = APIRouter(tags=["webhooks"])

GRAFANA_SIGNATURE = "X-Grafana-Alerting-Signature"
GRAFANA_TIMESTAMP = "X-Grafana-Alerting-Signature-Timestamp"
WINDOW_S = 300


def grafana_signed(secret: str, body: bytes, signature: str, timestamp: str | None) -> bool:
    """Grafana's HMAC: bare hex over the body, or over `timestamp:body` (a recent timestamp)."""
    signed = body
    if timestamp is not None:
        if not timestamp.strip().isdigit() or abs(time.time() - int(timestamp)) > WINDOW_S:
            return False
        signed = timestamp.strip().encode() + b":" + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


async def _signed_body(c: Context, request: Request, secret: SecretStr | None) -> "GrafanaWebhook":
    """The body, checked: signed (Grafana's way or redalert's), or a responder's token. A signed
    request already received is answered without acting (shared/signing.py)."""
    body = await request.body()
    if secret is None:  # a responder's token, as for the other tools' webhooks
        await auth.responder(request, await auth.bearer(request))
    elif (theirs := request.headers.get(GRAFANA_SIGNATURE)) is not None:
        timestamp = request.headers.get(GRAFANA_TIMESTAMP)
        if not grafana_signed(secret.get_secret_value(), body, theirs, timestamp):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                f"{GRAFANA_SIGNATURE}: not the hex HMAC-SHA256 of the body (or of "
                f"<{GRAFANA_TIMESTAMP}>:<body>, within {WINDOW_S} s) with the secret",
            )
        # Acted on once, like every signed request: remembered while a replay could verify.
        remember = 2 * WINDOW_S if timestamp is not None else c.settings.dedup_ttl_s
        nonce = hashlib.sha256(theirs.strip().lower().encode()).hexdigest()[:32]
        if not await c.redis.set(c.keys.webhook_nonce(nonce), "1", nx=True, ex=remember):
            raise Replayed
    else:
        await verify_signed(c, secret.get_secret_value(), body, request)
    try:
        return GrafanaWebhook.model_validate_json(body)
    except ValidationError as e:
        raise Invalid(e) from None


class GrafanaAlert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str | None = None
    fingerprint: str = Field(min_length=1, max_length=150)
    panelURL: str | None = None
    valueString: str | None = None

    @property
    def text(self) -> str:
        a = self.annotations
        name = self.labels.get("alertname", "")
        headline = a.get("summary") or a.get("description") or name or "Grafana alert"
        details = a.get("description") if a.get("summary") else None
        text = f"{headline}: {details}" if details else headline
        return ("Resolved: " + text) if self.status == "resolved" else text


class GrafanaWebhook(BaseModel):
    model_config = ConfigDict(extra="allow")

    receiver: str = ""
    status: Literal["firing", "resolved"]
    alerts: list[GrafanaAlert] = Field(min_length=1, max_length=1_000)
    externalURL: str | None = None
    version: str | None = None


def alert_to_post(alert: GrafanaAlert, receiver: str) -> Post:
    said = {"status": alert.status}
    if severity := alert.labels.get("severity", "").strip().lower():
        said["severity"] = severity[:200]
    over = alert.status == "resolved" and alert.endsAt is not None and alert.endsAt.year > 1
    return Post(
        # Every notification of one firing is one post; its resolution is another.
        id=f"{alert.fingerprint}:{alert.startsAt.isoformat()}:{alert.status}",
        source="grafana",
        text=clip(alert.text),
        author=(alert.labels.get("grafana_folder") or receiver or None),
        url=alert.panelURL or alert.generatorURL,
        published_at=alert.endsAt if over else alert.startsAt,
        incident_key=alert.fingerprint,
        hint=SourceHint(scheme="grafana", values=said),
        labels=clean_labels(alert.labels),
    )


class GrafanaAnswer(BaseModel):
    posts: int = Field(description="new posts")
    duplicates: int = Field(description="alerts already posted")


@router.post("/v1/webhooks/grafana", status_code=202, response_model=GrafanaAnswer)
async def grafana(request: Request, c: Context = Depends(ctx)) -> Any:
    hook = await _signed_body(c, request, c.settings.grafana_secret)
    posts = [alert_to_post(alert, hook.receiver) for alert in hook.alerts]
    accepted, duplicates = await c.publisher.posts(posts)
    return {"posts": len(accepted), "duplicates": len(duplicates)}
