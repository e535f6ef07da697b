"""notify: incident events -> the subscribers who should hear about them.

Per batch of events:
1. decide — for each (event, subscription): what was this subscription last told about this
   incident, and does this event change that (firing.decide)? A notification owed is recorded
   *before* sending, together with the new firing state, in one compare-and-apply; so two
   replicas never both decide to send, and a crash after deciding does not lose the message.
2. send — every owed notification, concurrently, each URL retried on its own (send.Sender).
3. record — each attempt in `deliveries` and the incident's delivery list; a URL that failed every
   attempt goes to `deadletter`; the notification is marked done and the event acked.
A redelivered event finds its notifications marked done and sends nothing twice.
"""

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from services.notify.firing import FiringState, decide
from services.notify.render import Notification, render
from services.notify.send import Sender, UrlResult
from shared import keys
from shared.atomic import CompareAndApply, Guarded
from shared.codec import DecodeError, decode
from shared.consumer import Batch, Entry, StreamConsumer
from shared.models import DeadLetter, Delivery, DeliveryOutcome, IncidentEvent, Subscription
from shared.settings import Settings
from shared.subscriptions import SubscriptionStore

log = logging.getLogger("redalert.notify")

FIRING_TTL_S = 30 * 86_400
NOTIFICATION_TTL_S = 7 * 86_400
MAX_CONFLICT_RETRIES = 8

Results = dict[tuple[str, str], list[UrlResult]]  # (event id, subscription id) -> per-URL results


class Owed(BaseModel):
    """A notification decided for one event and one subscription, and how far it got."""

    status: str  # "pending" until every URL succeeded or was dead-lettered, then "done"
    notification: Notification
    decided_by: str
    decided_at: datetime


@dataclass
class _Work:
    entry: Entry
    event: IncidentEvent
    owed: list[tuple[Subscription, Owed]] = field(default_factory=list)
    blocked: str | None = None  # another consumer is sending this event's notification now


class SubscriptionCache:
    """Subscriptions in memory, reloaded when their version in Redis moves."""

    def __init__(self, store: SubscriptionStore) -> None:
        self.store = store
        self._version = -1
        self._subs: list[Subscription] = []

    async def current(self) -> list[Subscription]:
        version = await self.store.version()
        if version != self._version:
            self._subs = await self.store.all()
            self._version = version
        return self._subs


class NotifyService:
    name = "notify"

    def __init__(self, redis: Redis, settings: Settings, sender: Sender | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.k = keys.Keys(settings.namespace)
        self.subs = SubscriptionCache(SubscriptionStore(redis, self.k))
        self.sender = sender or Sender(settings)
        self.cas = CompareAndApply(redis)
        self.consumers = [StreamConsumer(redis, settings, keys.INCIDENT_EVENTS, self.on_events)]
        # A decision older than this with no outcome is taken to be abandoned by a dead consumer.
        self.lease_s = settings.send_timeout_s * settings.send_attempts * 2 + 10

    async def on_events(self, batch: Batch) -> None:
        work: list[_Work] = []
        for entry in batch.entries:
            try:
                work.append(_Work(entry, decode(entry.fields, IncidentEvent)))
            except DecodeError as e:
                batch.deadletter(entry, f"undecodable incident event: {e}")
        if not work:
            return
        subs = await self.subs.current()
        results: Results = {}
        if subs:
            await self._decide(work, subs)
            results = await self._deliver(work)
        for w in work:
            if w.blocked:
                batch.fail(w.entry, w.blocked)
        done = [w for w in work if not w.blocked]
        if done:
            await self._finish(batch, done, results)

    # --- 1. decide -------------------------------------------------------------------------------

    async def _decide(self, work: list[_Work], subs: list[Subscription]) -> None:
        pairs = [(w, s) for w in work for s in subs]
        for _ in range(MAX_CONFLICT_RETRIES):
            if not pairs:
                return
            pairs = await self._decide_once(pairs)
        for w, _s in pairs:
            w.blocked = "firing state kept conflicting with another notify replica"

    async def _decide_once(
        self, pairs: list[tuple[_Work, Subscription]]
    ) -> list[tuple[_Work, Subscription]]:
        k = self.k
        firing_keys = list(dict.fromkeys(k.firing(s.id, w.event.incident.id) for w, s in pairs))
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in firing_keys:
                pipe.get(key)
            for w, s in pairs:
                pipe.get(k.notification(w.event.id, s.id))
            replies = await pipe.execute()
        read = dict(zip(firing_keys, replies[: len(firing_keys)], strict=True))
        recorded = replies[len(firing_keys) :]

        now = datetime.now(UTC)
        state = {key: FiringState.model_validate_json(v) if v else None for key, v in read.items()}
        writes: dict[str, Guarded] = {}
        members: dict[str, list[tuple[_Work, Subscription, Owed | None]]] = {}
        for (w, s), raw in zip(pairs, recorded, strict=True):
            key = k.firing(s.id, w.event.incident.id)
            if raw:  # decided before: a redelivery, or a race with another replica
                owed = Owed.model_validate_json(raw)
                if owed.status == "done":
                    continue
                age = (now - owed.decided_at).total_seconds()
                mine = owed.decided_by == self.settings.consumer_name
                if not mine and age < self.lease_s:
                    w.blocked = f"notification being sent by {owed.decided_by}"
                    continue
                w.owed.append((s, owed))  # decided, never finished: send it now
                continue
            new_state, kind = decide(state[key], w.event, s)
            if new_state == state[key]:
                continue
            state[key] = new_state
            write = writes.get(key)
            if write is None:
                write = writes[key] = Guarded()
                write.expect(key, read[key].decode() if read[key] else None)
            write.do("SET", key, new_state.model_dump_json(), "EX", FIRING_TTL_S)
            owed_now = None
            if kind is not None:
                n = render(w.event, s, kind, self.settings.public_url)
                owed_now = Owed(
                    status="pending",
                    notification=n,
                    decided_by=self.settings.consumer_name,
                    decided_at=now,
                )
                write.do(
                    "SET",
                    k.notification(w.event.id, s.id),
                    owed_now.model_dump_json(),
                    "EX",
                    NOTIFICATION_TTL_S,
                )
            members.setdefault(key, []).append((w, s, owed_now))

        keys_in_order = list(writes)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys_in_order:
                await self.cas.queue(pipe, writes[key])
            results = await pipe.execute()
        retry = []
        for key, result in zip(keys_in_order, results, strict=True):
            for w, s, owed in members[key]:
                if result != 0:
                    retry.append((w, s))
                elif owed is not None:
                    w.owed.append((s, owed))
        return retry

    # --- 2. send ---------------------------------------------------------------------------------

    async def _deliver(self, work: list[_Work]) -> "Results":
        # Concurrent across subscriptions and incidents; in event order within one subscription's
        # view of one incident, so "[RED ALERT]" never arrives after its "[RESOLVED]".
        queues: dict[tuple[str, str], list[tuple[_Work, Subscription, Owed]]] = {}
        for w in work:
            for s, o in w.owed:
                queues.setdefault((s.id, w.event.incident.id), []).append((w, s, o))
        results: Results = {}

        async def drain(queue: list[tuple[_Work, Subscription, Owed]]) -> None:
            for w, s, o in queue:
                results[(w.event.id, s.id)] = await self.sender.send(s.urls, o.notification)

        await asyncio.gather(*(drain(q) for q in queues.values()))
        return results

    # --- 3. record -------------------------------------------------------------------------------

    async def _finish(self, batch: Batch, done: list[_Work], results: "Results") -> None:
        k = self.k
        async with self.redis.pipeline(transaction=True) as pipe:
            for w in done:
                for s, owed in w.owed:
                    n = owed.notification
                    for r in results.get((w.event.id, s.id), []):
                        self._record(pipe, w.event, s, n, r)
                    owed.status = "done"
                    pipe.set(
                        k.notification(w.event.id, s.id),
                        owed.model_dump_json(),
                        ex=NOTIFICATION_TTL_S,
                    )
            pipe.execute_command(*batch.xack([w.entry for w in done]))
            await pipe.execute()

    def _record(
        self, pipe: Pipeline, event: IncidentEvent, s: Subscription, n: Notification, r: UrlResult
    ) -> None:
        outcome = DeliveryOutcome.SENT if r.ok else DeliveryOutcome.DEADLETTERED
        delivery = Delivery(
            event_id=event.id,
            incident_id=event.incident.id,
            subscription_id=s.id,
            subscription_name=s.name,
            url=r.url,
            outcome=outcome,
            attempt=r.attempts,
            latency_ms=r.latency_ms,
            title=n.title,
            notify_type=n.notify_type,
            error=r.error,
        )
        data = delivery.model_dump_json(exclude_none=True)
        pipe.xadd(
            self.k.stream(keys.DELIVERIES),
            {"data": data},
            maxlen=self.settings.audit_maxlen,
            approximate=True,
        )
        pipe.rpush(self.k.incident_deliveries(event.incident.id), data)
        if not r.ok:
            letter = DeadLetter(
                stream=keys.DELIVERIES,
                fields={"data": json.dumps(n.model_dump(mode="json"))},
                error=r.error or "failed",
                attempts=r.attempts,
                extra={"subscription_id": s.id, "url_index": r.index, "url": r.url},
            )
            pipe.xadd(self.k.stream(keys.DEADLETTER), {"data": letter.model_dump_json()})
            log.error(
                "delivery of %s to %s (%s) failed after %d attempts: %s",
                n.event_id,
                s.name,
                r.url,
                r.attempts,
                r.error,
            )
