"""Inbound webhooks from other tools: PagerDuty Events API v2 and Alertmanager (version 4).

Their alerts become posts with the severity already decided and an incident key (PagerDuty's
dedup_key, Alertmanager's fingerprint), so every event about one alert lands in one incident;
their acknowledgements and resolutions become commands on that incident.

Authentication: with REDALERT_PAGERDUTY_SECRET / REDALERT_ALERTMANAGER_SECRET set, the body must
carry `X-Redalert-Signature: sha256=<HMAC of the raw body>`; otherwise a token of the
responder role (or any token while none exists).
A bad or missing signature is a 401 and nothing is published.
"""

import hashlib
import uuid
from datetime import datetime
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from services.ingest import alertmanager as am
from services.ingest.context import Context, ctx, verify_signed
from services.ingest.errors import Invalid
from shared import auth
from shared.labels import clean as clean_labels
from shared.models import CommandAction, IncidentCommand, Post
from shared.severity import Severity

router = APIRouter(tags=["webhooks"])

M = TypeVar("M", bound=BaseModel)


async def _authenticated(
    c: Context, request: Request, secret: SecretStr | None, model: type[M]
) -> M:
    """The body, checked: signed (or the API token), JSON, and valid (422 naming the field).
    A signed request already received is answered without acting (shared/signing.py)."""
    body = await request.body()
    if secret is not None:
        await verify_signed(c, secret.get_secret_value(), body, request)
    else:
        await auth.responder(request, await auth.bearer(request))
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        raise Invalid(e) from None


def _short(key: str) -> str:
    """A tool's key (PagerDuty allows 255 characters) kept within redalert's ids (200 with the
    suffixes they get): a long one is replaced by its digest, the same every time."""
    return key if len(key) <= 150 else "sha256-" + hashlib.sha256(key.encode()).hexdigest()


def _digest(event: BaseModel) -> str:
    return hashlib.sha256(event.model_dump_json().encode()).hexdigest()[:16]


# --- PagerDuty ---------------------------------------------------------------------------------

PAGERDUTY_SEVERITY = {
    "critical": Severity.RED_ALERT,
    "error": Severity.RED_ALERT,
    "warning": Severity.ASSESSING,
    "info": Severity.NO_DANGER,
}


class PagerDutyPayload(BaseModel):
    model_config = ConfigDict(extra="allow")

    summary: str = Field(min_length=1, max_length=1024)
    severity: Literal["critical", "error", "warning", "info"]
    source: str = Field(min_length=1, max_length=255)
    timestamp: datetime | None = None
    component: str | None = None
    group: str | None = None
    # `class` is a Python keyword: the field keeps PagerDuty's name on the wire.
    class_: str | None = Field(default=None, alias="class")

    @property
    def labels(self) -> dict[str, str]:
        """PagerDuty's routing fields as labels, named as PagerDuty names them."""
        return clean_labels(
            {
                "source": self.source,
                "component": self.component,
                "group": self.group,
                "class": self.class_,
                "severity": self.severity,
            }
        )


class PagerDutyEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    routing_key: str = Field(min_length=1, max_length=255)
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: str | None = Field(default=None, min_length=1, max_length=255)
    payload: PagerDutyPayload | None = None
    client_url: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> "PagerDutyEvent":
        if self.event_action == "trigger" and self.payload is None:
            raise ValueError("payload is required to trigger")
        if self.event_action != "trigger" and self.dedup_key is None:
            raise ValueError(f"dedup_key is required to {self.event_action}")
        return self


class PagerDutyAnswer(BaseModel):
    """What PagerDuty's Events API answers, which its senders expect."""

    status: str
    message: str
    dedup_key: str


class AlertmanagerAnswer(BaseModel):
    posts: int = Field(description="new posts (firing alerts not seen before)")
    duplicates: int = Field(description="firing alerts already posted")
    resolved: int = Field(description="resolve commands published")
    skipped: int = Field(description="resolved alerts with nothing to resolve")


@router.post("/v1/webhooks/pagerduty", status_code=202, response_model=PagerDutyAnswer)
async def pagerduty(request: Request, c: Context = Depends(ctx)) -> Any:
    event = await _authenticated(c, request, c.settings.pagerduty_secret, PagerDutyEvent)
    dedup_key = event.dedup_key or uuid.uuid4().hex
    if event.event_action == "trigger":
        payload = event.payload
        assert payload is not None  # checked by the model
        post = Post(
            # Identical retries are one post; an updated trigger is a new post in the incident.
            id=f"{_short(dedup_key)}:{_digest(event)}",
            source="pagerduty",
            text=payload.summary,
            author=payload.source,
            url=event.client_url,
            published_at=payload.timestamp,
            severity=PAGERDUTY_SEVERITY[payload.severity],
            incident_key=_short(dedup_key),
            labels=payload.labels,
        )
        await c.publisher.posts([post])
    else:
        action = CommandAction.ACK if event.event_action == "acknowledge" else CommandAction.RESOLVE
        await c.publisher.command(
            IncidentCommand(
                source="pagerduty",
                incident_key=_short(dedup_key),
                action=action,
                actor="pagerduty",
                via="pagerduty",
            )
        )
    return {"status": "success", "message": "Event processed", "dedup_key": dedup_key}


# --- Alertmanager --------------------------------------------------------------------------------


class Alert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    generatorURL: str | None = None
    fingerprint: str = Field(min_length=1, max_length=200)

    @property
    def text(self) -> str:
        a = self.annotations
        headline = a.get("summary") or a.get("description") or self.labels.get("alertname", "")
        details = a.get("description") if a.get("summary") else None
        return (f"{headline}: {details}" if details else headline)[:10_000] or "alert"


class AlertmanagerWebhook(BaseModel):
    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    alerts: list[Alert] = Field(min_length=1, max_length=1_000)


@router.post("/v1/webhooks/alertmanager", status_code=202, response_model=AlertmanagerAnswer)
async def alertmanager(request: Request, c: Context = Depends(ctx)) -> Any:
    hook = await _authenticated(c, request, c.settings.alertmanager_secret, AlertmanagerWebhook)
    group_by = c.settings.alertmanager_group_labels
    table = c.settings.alertmanager_severity_table
    groups = AlertGroups(c) if group_by else None
    posts, commands, skipped = [], [], 0
    for alert in hook.alerts:
        # Alertmanager repeats a firing alert every repeat_interval: one alert, one post.
        post_id = f"{_short(alert.fingerprint)}:{alert.startsAt.isoformat()}"
        key = _short(am.group_key(alert.labels, alert.fingerprint, group_by))
        if alert.status == "firing":
            severity, warning = am.severity(alert.labels, table)
            if groups is not None:
                await groups.firing(key, alert.fingerprint)
            posts.append(
                Post(
                    id=post_id,
                    source="alertmanager",
                    text=alert.text,
                    author=alert.labels.get("job") or hook.receiver or None,
                    url=alert.generatorURL,
                    published_at=alert.startsAt,
                    severity=severity,
                    incident_key=key,
                    labels=clean_labels(alert.labels),
                    warnings=[warning] if warning else [],
                )
            )
            continue
        others_firing = groups is not None and await groups.resolved(key, alert.fingerprint)
        if others_firing or await c.redis.get(c.keys.applied(f"alertmanager:{post_id}")) == b"-":
            # It fired below any incident (e.g. severity info): nothing to resolve; or other
            # alerts of its group still fire: the group's incident stays open.
            skipped += 1
            continue
        commands.append(
            IncidentCommand(
                source="alertmanager",
                incident_key=key,
                action=CommandAction.RESOLVE,
                actor="alertmanager",
                via="alertmanager",
            )
        )
    accepted, duplicates = await c.publisher.posts(posts)
    for cmd in commands:
        await c.publisher.command(cmd)
    return {
        "posts": len(accepted),
        "duplicates": len(duplicates),
        "resolved": len(commands),
        "skipped": skipped,
    }


class AlertGroups:
    """Which alerts of each group (REDALERT_ALERTMANAGER_GROUP_BY) still fire, in Redis, so the
    group's incident resolves with its last alert, whichever ingest replica hears of it."""

    def __init__(self, c: Context) -> None:
        self.redis, self.keys, self.ttl = c.redis, c.keys, c.settings.dedup_ttl_s

    async def firing(self, key: str, fingerprint: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(self.keys.alert_group(key), fingerprint)
            pipe.expire(self.keys.alert_group(key), self.ttl)  # a group nobody resolves ends
            await pipe.execute()

    async def resolved(self, key: str, fingerprint: str) -> bool:
        """Forget the alert; True when others of its group still fire."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.srem(self.keys.alert_group(key), fingerprint)
            pipe.scard(self.keys.alert_group(key))
            _, left = await pipe.execute()
        return bool(left)
