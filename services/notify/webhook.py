"""Outbound webhooks: every incident event a webhook subscription matches, POSTed as signed JSON.

The body is the event, the incident's snapshot (with its links) and the post that caused it;
`X-Redalert-Signature: sha256=<hex>` is HMAC-SHA256 of the raw body with the subscription's
secret, and `X-Redalert-Timestamp` (also `sent_at` in the signed body) lets a receiver refuse
stale or replayed deliveries. `X-Redalert-Delivery` is the same on every retry of one delivery,
so a receiver can drop duplicates. The payload is documented in the README.
"""

import json
from datetime import datetime
from typing import Any

from services.notify.firing import NoticeKind
from services.notify.render import Notification
from shared import signing
from shared.models import IncidentEvent, Subscription

SCHEMA_VERSION = 1


def payload(event: IncidentEvent, sub: Subscription, links: dict[str, str | None]) -> Notification:
    """The webhook's message, stored like any owed notification until it is sent."""
    incident = event.incident
    body: dict[str, Any] = {
        "version": SCHEMA_VERSION,
        "type": f"incident.{event.kind.value}",
        "subscription": {"id": sub.id, "name": sub.name},
        "event": event.model_dump(mode="json", exclude={"incident", "post"}, exclude_none=True),
        "incident": {**incident.model_dump(mode="json"), "links": links},
        "post": event.post.model_dump(mode="json", exclude_none=True) if event.post else None,
    }
    return Notification(
        event_id=event.id,
        incident_id=incident.id,
        subscription_id=sub.id,
        kind=NoticeKind.EVENT,
        title=body["type"],
        body=json.dumps(body, separators=(",", ":")),
        notify_type=incident.severity.apprise_type,
        format="json",
    )


def request(n: Notification, secret: str, now: datetime) -> tuple[bytes, dict[str, str]]:
    """The exact bytes to POST and their headers; signed afresh for every attempt."""
    timestamp = str(int(now.timestamp()))
    body = json.loads(n.body)
    body["sent_at"] = timestamp
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "redalert",
        "X-Redalert-Event": n.title,
        "X-Redalert-Delivery": f"{n.event_id}/{n.subscription_id}",  # = send.delivery_id
        "X-Redalert-Timestamp": timestamp,
        signing.HEADER: signing.sign(secret, raw),
    }
    return raw, headers
