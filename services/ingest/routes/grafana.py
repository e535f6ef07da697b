"""Grafana unified alerting's webhook contact point: `POST /v1/webhooks/grafana`.

Each alert of a notification becomes a post in the incident keyed by its `fingerprint`, its
labels the post's labels, and its hint (`grafana`: `status` firing/resolved and the `severity`
label) mapped by the rules file — so firing opens (or joins) the incident and resolved resolves
it, through the same tables and explanation as every structured source. Grafana repeats a firing
alert at each repeat interval: one alert, one post.

Signed like the other tool webhooks: with REDALERT_GRAFANA_SECRET set the body must carry
`X-Redalert-Signature: sha256=<HMAC of the raw body>` (Grafana: a custom header, or a proxy that
signs); without it the API token applies.
"""

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from services.ingest.context import Context, ctx
from services.ingest.routes.webhooks import _authenticated
from services.ingest.sources.text import clip
from shared.labels import clean as clean_labels
from shared.models import Post, SourceHint

router = APIRouter(tags=["webhooks"])


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


@router.post("/v1/webhooks/grafana", status_code=202)
async def grafana(request: Request, c: Context = Depends(ctx)) -> Any:
    hook = await _authenticated(request, c.settings.grafana_secret, GrafanaWebhook)
    posts = [alert_to_post(alert, hook.receiver) for alert in hook.alerts]
    accepted, duplicates = await c.publisher.posts(posts)
    return {"posts": len(accepted), "duplicates": len(duplicates)}
