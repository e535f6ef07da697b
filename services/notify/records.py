"""What a send leaves behind: a Delivery per attempt, and a DeadLetter when every attempt failed.

The records are pure; the service (and the API's replay) write them — notify through
`GroupCommit`, which commits the writes of concurrent sends together. URLs are masked; a dead
letter names the subscription and the URL's position, plus a short hash of the URL so a replay
can tell whether the URL at that position is still the one that failed — never the URL itself.
"""

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from services.notify.render import Notification
from services.notify.send import UrlResult
from shared import keys, metrics
from shared.models import DeadLetter, Delivery, DeliveryOutcome, Subscription
from shared.redis import ReplicatedPipeline

log = logging.getLogger("redalert.notify")


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
        metrics.dead_lettered(keys.DELIVERIES)
    if written:
        metrics.delivered(r.url, written[-1].outcome.value, n.received_at, n.incident_id)
    return written


class GroupCommit:
    """Writes from many concurrent sends, committed together: one transaction per flush.

    Each caller queues its commands and waits for its own replies; whatever arrives while a
    flush is running goes into the next one. So a thousand sends ending at once cost a few
    round trips, not a thousand (nor a thousand connections), and each caller's writes stay
    atomic: a flush is one MULTI/EXEC. With REDALERT_MIN_REPLICAS_ACK=N it is followed by WAIT N
    on the same connection, so a send's records (and its "sent" mark) are on N replicas before
    its caller moves on: a failover then does not forget what was already sent.
    """

    def __init__(self, redis: Redis, max_batch: int = 512) -> None:
        self.redis = redis
        self.max_batch = max_batch
        self._queue: list[tuple[Callable[[Pipeline], Awaitable[None]], asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def write(self, queue_commands: Callable[[Pipeline], Awaitable[None]]) -> list[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((queue_commands, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            spans = []
            try:
                async with ReplicatedPipeline(self.redis) as pipe:
                    for queue_commands, _ in batch:
                        start = len(pipe.command_stack)
                        await queue_commands(pipe)
                        spans.append((start, len(pipe.command_stack)))
                    replies = await pipe.execute(raise_on_error=False)
                if pipe.shortfall is not None:
                    # Written and sent already: say so, as classify's atomic writes do.
                    log.warning("send records: %s", pipe.shortfall)
            except Exception as e:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (start, end), (_, future) in zip(spans, batch, strict=True):
                if not future.done():
                    future.set_result(replies[start:end])
