"""What a send leaves behind: a Delivery per attempt, and a DeadLetter when every attempt failed.

Pure: the service (and the API's replay) write these. URLs are masked; a dead letter names the
subscription and the URL's position, plus a short hash of the URL so a replay can tell whether
the URL at that position is still the one that failed — never the URL itself.
"""

import hashlib
import json

from redis.asyncio.client import Pipeline

from services.notify.render import Notification
from services.notify.send import UrlResult
from shared import keys
from shared.models import DeadLetter, Delivery, DeliveryOutcome, Subscription


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def incidents_of(n: Notification) -> list[str]:
    return [n.incident_id] if n.incident_id else list(n.related)


def deliveries(
    sub: Subscription, n: Notification, r: UrlResult, *, deadletter: bool = True
) -> list[Delivery]:
    """One record per attempt: failed ones that were retried, then the last one's outcome."""
    gave_up = DeliveryOutcome.DEADLETTERED if deadletter else DeliveryOutcome.FAILED

    def record(attempt: int, outcome: DeliveryOutcome, ms: float, error: str | None) -> Delivery:
        return Delivery(
            event_id=n.event_id,
            incident_id=n.incident_id,
            subscription_id=sub.id,
            subscription_name=sub.name,
            url=r.url,
            outcome=outcome,
            attempt=attempt,
            latency_ms=ms,
            title=n.title,
            notify_type=n.notify_type,
            error=error,
            kind=n.kind.value,
        )

    if r.skipped:
        return [record(0, DeliveryOutcome.DEADLETTERED, 0.0, r.skipped)]
    out = []
    for a in r.attempts:
        failed = gave_up if a is r.attempts[-1] else DeliveryOutcome.FAILED
        outcome = DeliveryOutcome.SENT if a.ok else failed
        out.append(record(a.number, outcome, a.latency_ms, a.error))
    return out


def dead_letter(sub: Subscription, n: Notification, r: UrlResult, raw_url: str) -> DeadLetter:
    return DeadLetter(
        stream=keys.DELIVERIES,
        fields={"data": json.dumps(n.model_dump(mode="json"))},
        error=r.error or "failed",
        attempts=len(r.attempts),
        extra={
            "subscription_id": sub.id,
            "subscription_name": sub.name,
            "url_index": r.index,
            "url": r.url,
            "url_hash": url_hash(raw_url),
            "kind": n.kind.value,
        },
    )


def queue(
    pipe: Pipeline,
    k: keys.Keys,
    maxlen: int,
    sub: Subscription,
    n: Notification,
    r: UrlResult,
    raw_url: str,
    *,
    deadletter: bool = True,
) -> list[Delivery]:
    """Queue one URL's records on a pipeline: its attempts, and its dead letter if it failed."""
    written = deliveries(sub, n, r, deadletter=deadletter)
    for delivery in written:
        data = delivery.model_dump_json(exclude_none=True)
        pipe.xadd(k.stream(keys.DELIVERIES), {"data": data}, maxlen=maxlen, approximate=True)
        for incident_id in incidents_of(n):
            pipe.rpush(k.incident_deliveries(incident_id), data)
    if deadletter and not r.ok:
        letter = dead_letter(sub, n, r, raw_url)
        pipe.xadd(k.stream(keys.DEADLETTER), {"data": letter.model_dump_json()})
    return written
