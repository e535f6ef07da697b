"""Sending a chain: what one subscription is owed about one incident, head first, one at a time.

The holder of a chain's lease (services/notify/scheduler.py) runs it: for the head message, each
target URL goes through its lane (services/notify/lanes.py); each URL's outcome is recorded as
soon as it is known — its attempts on `deliveries`, a dead letter if it failed — and, in the same
transaction, the message is marked done and popped from the outbox. The next message starts only
then, so order holds; another chain never waits for this one.

A chain whose lane is full is handed back (due again shortly); one whose lease was lost to
another replica stops after the send in flight.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from services.notify import records
from services.notify.lanes import Lanes
from services.notify.render import Notification
from services.notify.running import Running
from services.notify.scheduler import Held, Leases
from services.notify.send import UrlResult, target_urls
from shared.keys import Keys
from shared.models import Subscription
from shared.settings import Settings

log = logging.getLogger("redalert.notify")

NOTIFICATION_TTL_S = 7 * 86_400
READ_AHEAD = 32  # messages of one chain read at once
READERS = 16  # chains reading their outbox at once (after a takeover there may be thousands)
FULL_LANE_RETRY_S = 0.5


DONE = '{"status":"done"}'  # what an owed notification's key holds once it is finished


def is_done(raw: bytes | str | None) -> bool:
    """Has this owed notification (its key's value) been finished?"""
    if raw is None:
        return False
    text = raw.decode() if isinstance(raw, bytes) else raw
    return text == DONE or Owed.model_validate_json(text).status == "done"


class Owed(BaseModel):
    """A notification decided for one event and one subscription, and how far it got."""

    status: str  # "pending" until every URL succeeded or was dead-lettered, then "done"
    notification: Notification
    decided_by: str
    decided_at: datetime


@dataclass
class Decided:
    """An owed notification, ready to send."""

    sub: Subscription
    owed: Owed
    sent: set[int] = field(default_factory=set)  # URL indices already finished
    results: list[UrlResult] = field(default_factory=list)


class ChainRunner:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        keys: Keys,
        leases: Leases,
        lanes: Lanes,
        subscriptions: Callable[[], Awaitable[list[Subscription]]],
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.k = keys
        self.leases = leases
        self.lanes = lanes
        self.subscriptions = subscriptions
        self.commit = records.GroupCommit(redis)
        self._by_id: tuple[list[Subscription], dict[str, Subscription]] = ([], {})
        self._reads = asyncio.Semaphore(READERS)
        self.tasks = Running()

    def start(self, held: Held, known: list[Decided] | None = None) -> None:
        """Run a held chain in the background; `known`: its whole outbox, already in memory."""
        self.tasks.start(self.run(held, known))

    async def run(self, held: Held, known: list[Decided] | None) -> None:
        try:
            await self._run(held, known)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease lapses and the chain is taken over: nothing is lost, it only waits.
            log.exception("sending %s failed; it will be retried", held.item.member)
        finally:
            self.leases.drop(held)

    async def _run(self, held: Held, known: list[Decided] | None) -> None:
        queue = list(known or [])
        while True:
            if held.lost:
                log.warning("stopped sending %s: another replica holds it now", held.item.member)
                return
            if not queue:
                queue = await self._read(held)
                if not queue:
                    await self.leases.postpone(held, 0)  # empty: removes the due item if ours
                    return
            d = queue.pop(0)
            if not self.lanes.has_room(d.sub):
                await self.leases.postpone(held, FULL_LANE_RETRY_S)
                return
            left = await self._send(held, d)
            if left == 0:
                return

    async def _read(self, held: Held) -> list[Decided]:
        """The chain's next messages from Redis (after a takeover, or when more were added)."""
        async with self._reads:
            return await self._read_outbox(held)

    async def _read_outbox(self, held: Held) -> list[Decided]:
        item = held.item
        ids = await self.redis.lrange(self.leases.outbox(item), 0, READ_AHEAD - 1)
        if not ids:
            return []
        sub_id = item.subscription_id
        async with self.redis.pipeline(transaction=False) as pipe:
            for event_id in ids:
                pipe.get(self.k.notification(event_id.decode(), sub_id))
                pipe.smembers(self.k.notification_sent(event_id.decode(), sub_id))
            replies = await pipe.execute()
        sub = (await self._subscriptions_by_id()).get(sub_id)
        out = []
        for n, event_id in enumerate(ids):
            raw, sent = replies[2 * n], replies[2 * n + 1]
            owed = Owed.model_validate_json(raw) if raw and not is_done(raw) else None
            if sub is None or owed is None:
                # Gone (expired, the subscription deleted) or already finished: just pop it.
                gone = event_id.decode()
                await self.commit.write(partial(self.leases.finish, held=held, event_id=gone))
                continue
            if owed.decided_by != self.settings.consumer_name:
                log.info(
                    "taking over %s for %s: decided by %s, which did not finish it",
                    owed.notification.event_id,
                    sub.name,
                    owed.decided_by,
                )
            out.append(Decided(sub, owed, sent={int(i) for i in sent}))
        return out

    async def _subscriptions_by_id(self) -> dict[str, Subscription]:
        subs = await self.subscriptions()
        if self._by_id[0] is not subs:  # reloaded (the list is kept until it changes)
            self._by_id = (subs, {s.id: s for s in subs})
        return self._by_id[1]

    async def _send(self, held: Held, d: Decided) -> int:
        """Send one message to each of its URLs not finished yet; record each as it ends.

        Returns what is left in the chain's outbox after it.
        """
        n = self.lanes.sender.signed(d.owed.notification)  # its action links, signed now
        todo = [i for i in range(len(target_urls(d.sub))) if i not in d.sent]
        d.owed.status = "done"  # as written once every URL is finished
        if len(todo) > 1:
            # Each URL recorded alone as it ends, so a takeover does not send it again.
            async def url_done(r: UrlResult) -> None:
                await self._record([(d, r)], held=None)

            await asyncio.gather(*(self.lanes.deliver(d.sub, i, n, then=url_done) for i in todo))
            return await self._record([], held=held, d=d)
        left = -1

        async def done(r: UrlResult) -> None:
            nonlocal left
            left = await self._record([(d, r)], held=held, d=d)

        if todo:
            await self.lanes.deliver(d.sub, todo[0], n, then=done)
        else:  # every URL finished before a takeover: only the end is left to write
            left = await self._record([], held=held, d=d)
        return left

    async def _record(
        self,
        outcomes: list[tuple[Decided, UrlResult]],
        *,
        held: Held | None,
        d: Decided | None = None,
    ) -> int:
        """One transaction: each URL's attempts (and dead letter), and the message's end."""
        counts: Counter[str] = Counter()
        for dd, r in outcomes:
            if not r.ok:
                log.error(
                    "delivery of %s to %s (%s) dead-lettered after %d attempt(s): %s",
                    dd.owed.notification.event_id,
                    dd.sub.name,
                    r.url,
                    len(r.attempts),
                    r.error,
                )

        async def commands(pipe: Pipeline) -> None:
            for dd, r in outcomes:
                n = dd.owed.notification
                urls = target_urls(dd.sub)
                for delivery in records.queue(
                    pipe, self.k, self.settings.audit_maxlen, dd.sub, n, r, urls[r.index]
                ):
                    counts[delivery.outcome.value] += 1
                if r.skipped:
                    counts["skipped_circuit_open"] += 1
                if held is None:
                    sent_key = self.k.notification_sent(n.event_id, dd.sub.id)
                    pipe.sadd(sent_key, r.index)
                    pipe.expire(sent_key, NOTIFICATION_TTL_S)
            for name, value in counts.items():
                pipe.hincrby(self.k.notify_metrics, name, value)
            if held is not None and d is not None:
                n = d.owed.notification
                await self.leases.finish(
                    pipe,
                    held=held,
                    event_id=n.event_id,
                    done_json=DONE,  # the key stays (a redelivered event sees it decided)
                    ttl_s=NOTIFICATION_TTL_S,
                )

        replies = await self.commit.write(commands)
        if isinstance(replies[-1], Exception):
            raise replies[-1]
        return int(replies[-1]) if held is not None else -1

    async def drain(self, within_s: float) -> None:
        """On stop: let sends in flight finish (for up to `within_s`), then cancel the rest."""
        await self.tasks.drain(within_s)
