"""notify: incident events -> the subscribers who should hear about them.

The chain for every (event, subscription) pair — services/notify/pipeline.py has the steps:

    match → mute (silences, quiet hours) → dedup → rate limit → render → commit → send → record

1. decide (match … render, pure): read what each subscriber was told, the rate counters and the
   silences; run the steps (off the event loop: templates are users' code); then **commit** each
   subscription's decisions in one compare-and-apply guarded by what was read: the new firing
   state, the owed notification (status "pending") appended to its chain's outbox, the rate
   counter, the digest entry, the rechecks and reminders to schedule. Two replicas never both
   decide to send. The events are acked as soon as their decisions are committed: what is owed
   is in Redis, and sending never holds up the stream.
2. send: each chain (one subscription's messages about one incident) by whichever replica holds
   its short, renewed lease, head first (services/notify/scheduler.py, chains.py); each target
   URL through its own lane, with its own concurrency, timeouts and circuit breaker (lanes.py).
3. record: each URL's attempts in `deliveries` and the incident's delivery list, a dead letter
   if every attempt failed, and the message marked done — as each send ends.

A failure that belongs to one subscription (its template, its settings) is recorded on it
(`last_error`) and dead-letters that subscription's message only; the batch goes on. Timed work
(a mute ending, a reminder, a rate-limit window's digest, a chain whose sender died) runs from
the same chain in `run_due`, on whichever replica claims it first.
"""

import asyncio
import contextlib
import hashlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Generic, TypeVar

from redis.asyncio import Redis

from services.notify.chains import NOTIFICATION_TTL_S, ChainRunner, Decided, Owed
from services.notify.circuit import CircuitStore
from services.notify.firing import FiringState
from services.notify.lanes import Lanes
from services.notify.pipeline import (
    DIGEST_GRACE,
    Candidate,
    Env,
    RateWindow,
    Trigger,
    next_repeat,
    run,
    window_end,
)
from services.notify.render import Notification, actions, render_digest
from services.notify.scheduler import Leases, chain_item
from services.notify.send import Sender
from shared import keys
from shared.atomic import CompareAndApply, Guarded
from shared.codec import DecodeError, decode
from shared.consumer import Batch, Entry, StreamConsumer
from shared.due import DueItem, DueKind, DueSet, score
from shared.escalation import PolicyStore
from shared.links import link_secret
from shared.models import (
    DeadLetter,
    Delivery,
    DeliveryOutcome,
    Incident,
    IncidentEvent,
    Subscription,
    utcnow,
)
from shared.routing import Route, routes
from shared.settings import Settings
from shared.silences import SilenceStore
from shared.subscriptions import SubscriptionError, SubscriptionStore
from shared.templates import Limits

log = logging.getLogger("redalert.notify")

FIRING_TTL_S = 30 * 86_400
MAX_CONFLICT_RETRIES = 8
DUE_BATCH = 500
# A chain just decided is left this long to the replica that decided it (it claims it at once)
# before a poll may take it; a dead holder's chains likewise wait this long more. Long enough
# for a busy event loop (a big batch's decisions) to get from the commit to its claim: a poll
# that takes the chain first sends it just as well, but reads it back from Redis.
OWED_GRACE_S = 3.0
MAX_RUNNING_CHAINS = 20_000  # beyond this, due chains wait in Redis for a later poll
DECIDE_CHUNK = 200  # subscriptions decided (and their chains started) at a time

T = TypeVar("T")


@dataclass
class Job:
    """An event to run through the chain for some subscriptions: from the stream, or due."""

    event: IncidentEvent
    subs: list[Subscription]
    trigger: Trigger = Trigger.EVENT
    entry: Entry | None = None
    blocked: str | None = None  # its decision kept conflicting: retry later


class Versioned(Generic[T]):
    """A list kept in memory, reloaded when its version in Redis moves."""

    def __init__(
        self, version: Callable[[], Awaitable[int]], load: Callable[[], Awaitable[list[T]]]
    ) -> None:
        self._version_of, self._load = version, load
        self._version = -1
        self._items: list[T] = []

    async def current(self) -> list[T]:
        version = await self._version_of()
        if version != self._version:
            self._items = await self._load()
            self._version = version
        return self._items


class NotifyService:
    name = "notify"

    def __init__(self, redis: Redis, settings: Settings, sender: Sender | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.k = keys.Keys(settings.namespace)
        subscriptions, silences = SubscriptionStore(redis, self.k), SilenceStore(redis, self.k)
        self._subscriptions = subscriptions
        self.subs = Versioned(subscriptions.version, self._load_subscriptions)
        self.silences = Versioned(silences.version, silences.all)
        policies = PolicyStore(redis, self.k)
        self.policies = Versioned(policies.version, policies.all)
        self.sender = sender or Sender(settings)
        self.cas = CompareAndApply(redis)
        self.due = DueSet(redis, self.k)
        self.circuits = CircuitStore(redis, self.k)
        self.consumers = [StreamConsumer(redis, settings, keys.INCIDENT_EVENTS, self.on_events)]
        # Due work is claimed for this long; chains being sent renew it (scheduler.py).
        self.lease_s = settings.send_lease_s
        self.leases = Leases(redis, self.k, settings.send_lease_s)
        self.lanes = Lanes(settings, self.sender, self.circuits)
        self.limits = Limits(settings.render_timeout_s, settings.render_max_chars)
        self.chains = ChainRunner(
            redis, settings, self.k, self.leases, self.lanes, self.subs.current
        )

    async def _load_subscriptions(self) -> list[Subscription]:
        """Every subscription, with its apprise URLs parsed ahead of any send (in a thread)."""
        subs = await self._subscriptions.all()
        await self.sender.warm([u for s in subs for u in s.urls])
        return subs

    def background(self) -> list[Callable[[asyncio.Event], Awaitable[None]]]:
        return [self.run_due, self.leases.renew_forever]

    # --- the stream --------------------------------------------------------------------------

    async def on_events(self, batch: Batch) -> None:
        jobs: list[Job] = []
        for entry in batch.entries:
            try:
                jobs.append(Job(decode(entry.fields, IncidentEvent), [], entry=entry))
            except DecodeError as e:
                batch.deadletter(entry, f"undecodable incident event: {e}")
        if not jobs:
            return
        subs = await self.subs.current()
        # A few hundred subscriptions at a time: the first sends go out while the rest is
        # decided (the targets answer meanwhile), instead of after a thousand decisions. Each
        # subscription's decisions stay in one commit; the events are acked once all are made
        # (a crash in between redelivers them, and what was decided is not decided again).
        for start in range(0, len(subs), DECIDE_CHUNK):
            for job in jobs:
                job.subs = subs[start : start + DECIDE_CHUNK]
            await self.send(await self.decide(jobs))
        for job in jobs:
            job.subs = subs
            if job.blocked and job.entry is not None:
                batch.fail(job.entry, job.blocked)
        done = [j.entry for j in jobs if not j.blocked and j.entry is not None]
        if done:
            await self.redis.execute_command(*batch.xack(done))

    async def send(self, decided: list[Decided]) -> None:
        """Start sending the chains these decisions were added to (unless another replica is)."""
        await self._sign_links()
        by_chain: dict[DueItem, list[Decided]] = {}
        for d in decided:
            item = chain_item(d.sub.id, d.owed.notification.incident_id)
            by_chain.setdefault(item, []).append(d)
        for item, (held, length) in (await self.leases.claim(list(by_chain))).items():
            mine = by_chain[item]
            # The whole outbox is what was just decided: send it from memory, in order.
            self.chains.start(held, mine if length == len(mine) else None)

    # --- timed work --------------------------------------------------------------------------

    async def run_due(self, stop: asyncio.Event) -> None:
        """Take due work (rechecks, reminders, digests, abandoned notifications) until stopped."""
        try:
            with contextlib.suppress(Exception):  # subscriptions loaded, URLs parsed: ready
                await self.subs.current()
            while not stop.is_set():
                taken = 0
                try:
                    taken = await self.tick()
                except Exception:
                    log.exception("due work failed; it will be retried after its lease")
                if taken < DUE_BATCH:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self.settings.schedule_poll_s)
        finally:
            await self.chains.drain(within_s=self.settings.send_timeout_s)
            await self.sender.aclose()

    async def tick(self) -> int:
        now = utcnow()
        if len(self.chains.tasks) >= MAX_RUNNING_CHAINS:
            return 0  # enough in flight: the rest waits in Redis
        items, lease = await self.due.claim(now, self.lease_s, DUE_BATCH, owed_grace_s=OWED_GRACE_S)
        if not items:
            return 0
        subs = {s.id: s for s in await self.subs.current()}
        decided: list[Decided] = []
        kept: list[DueItem] = []  # not finished: left to come due again after the lease

        reconcile = [i for i in items if i.kind in (DueKind.RECHECK, DueKind.REPEAT)]
        events = await self._current_events([i.ref for i in reconcile])
        jobs: dict[DueItem, Job] = {}
        for item in reconcile:
            sub, event = subs.get(item.subscription_id), events.get(item.ref)
            if sub is not None and event is not None:
                trigger = Trigger.RECHECK if item.kind is DueKind.RECHECK else Trigger.REPEAT
                jobs[item] = Job(event, [sub], trigger)
        decided += await self.decide(list(jobs.values()))
        kept += [item for item, job in jobs.items() if job.blocked]

        digests = [i for i in items if i.kind is DueKind.DIGEST]
        for item in digests:
            sub = subs.get(item.subscription_id)
            if sub is not None and sub.rate_limit is not None:
                d, finished = await self._decide_digest(sub, int(item.ref), now)
                decided += [d] if d else []
                kept += [] if finished else [item]

        # Chains whose holder died (its lease lapsed) or that were handed back: send them now.
        await self._sign_links()
        for item in (i for i in items if i.kind is DueKind.OWED):
            if not self.leases.adopt(item, lease):
                self.chains.start(self.leases.hold(item, lease))

        release = [i for i in items if i not in kept and i.kind is not DueKind.OWED]
        if release:
            async with self.redis.pipeline(transaction=True) as pipe:
                await self.due.release(pipe, release, lease)
                await pipe.execute()
        await self.send(decided)
        return len(items)

    async def _sign_links(self) -> None:
        if self.sender.link_secret is None:  # action links are signed as a message goes out
            self.sender.link_secret = await link_secret(self.redis, self.settings)

    async def _current_events(self, incident_ids: list[str]) -> dict[str, IncidentEvent]:
        """Each incident as it is now, as an event (its last transition, its current snapshot)."""
        ids = list(dict.fromkeys(incident_ids))
        if not ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.get(self.k.incident(i))
                pipe.lindex(self.k.incident_timeline(i), -1)
            replies = await pipe.execute()
        out = {}
        for n, incident_id in enumerate(ids):
            snapshot, last = replies[2 * n], replies[2 * n + 1]
            if snapshot is None or last is None:
                continue
            event = IncidentEvent.model_validate_json(last)
            incident = Incident.model_validate_json(snapshot)
            out[incident_id] = event.model_copy(
                update={"id": f"{incident.id}:{incident.version}", "incident": incident}
            )
        return out

    # --- 1. decide (match → mute → dedup → rate limit → render → commit) ---------------------

    async def decide(self, jobs: list[Job]) -> list[Decided]:
        silences = await self.silences.current()
        pairs = [(j, s) for j in jobs for s in j.subs]
        decided: list[Decided] = []
        for _ in range(MAX_CONFLICT_RETRIES):
            if not pairs:
                return decided
            signed = partial(actions, self.settings)  # unsigned: signed as they are sent
            env = Env(utcnow(), silences, self.settings.public_url, signed, limits=self.limits)
            env.routes = await self._routes()
            pairs = await self._decide_once(pairs, env, decided)
        for job, _sub in pairs:
            job.blocked = "decisions kept conflicting with another notify replica"
        return decided

    async def _decide_once(
        self, pairs: list[tuple[Job, Subscription]], env: Env, decided: list[Decided]
    ) -> list[tuple[Job, Subscription]]:
        k = self.k
        told_keys = list(
            dict.fromkeys((s.id, j.event.incident.id) for j, s in pairs if s.webhook is None)
        )
        rate_keys = list(dict.fromkeys(s.id for _, s in pairs if s.rate_limit))
        async with self.redis.pipeline(transaction=False) as pipe:
            for sub_id, incident_id in told_keys:
                pipe.get(k.firing(sub_id, incident_id))
            for sub_id in rate_keys:
                pipe.get(k.rate(sub_id))
            for j, s in pairs:
                if j.trigger is not Trigger.REPEAT:  # a reminder's id is only known once decided
                    pipe.get(k.notification(j.event.id, s.id))
            replies = await pipe.execute()
        told_raw = dict(zip(told_keys, replies[: len(told_keys)], strict=True))
        rest = replies[len(told_keys) :]
        rate_raw = dict(zip(rate_keys, rest[: len(rate_keys)], strict=True))
        owed_raw = iter(rest[len(rate_keys) :])

        env.told = {key: _firing(v) for key, v in told_raw.items()}
        env.rate = {key: _window(v) for key, v in rate_raw.items()}
        owed_before = [
            j.trigger is not Trigger.REPEAT and next(owed_raw) is not None for j, _ in pairs
        ]
        # The steps run users' templates: off the event loop, each within its limits.
        by_sub, failed = await asyncio.to_thread(self._run_steps, pairs, owed_before, env)

        writes: dict[str, tuple[Guarded, list[Decided]]] = {}
        for sub_id, candidates in by_sub.items():
            try:
                write = self._commit(candidates, env, told_raw, rate_raw)
            except Exception as e:  # its settings (a duration out of range…): its failure only
                failed += [(j, c.sub, _describe(e)) for j, c in candidates]
                continue
            if write[0].commands:  # else nothing to write
                writes[sub_id] = write
        async with self.redis.pipeline(transaction=False) as pipe:
            for write, _owed in writes.values():
                await self.cas.queue(pipe, write)
            results = await pipe.execute(raise_on_error=False)
        retry = []
        for (sub_id, (_write, owed)), result in zip(writes.items(), results, strict=True):
            if result == 0:
                decided += owed
            elif isinstance(result, Exception):  # Redis refused its write: its failure only
                failed += [(j, c.sub, _describe(result)) for j, c in by_sub[sub_id]]
            else:
                retry += [(j, c.sub) for j, c in by_sub[sub_id]]
        await self._subscription_errors(by_sub, failed)
        return retry

    def _run_steps(
        self, pairs: list[tuple[Job, Subscription]], owed_before: list[bool], env: Env
    ) -> tuple[dict[str, list[tuple[Job, Candidate]]], list[tuple[Job, Subscription, str]]]:
        """The pure steps for every pair (in a worker thread); a pair that raises is set aside."""
        by_sub: dict[str, list[tuple[Job, Candidate]]] = {}
        failed: list[tuple[Job, Subscription, str]] = []
        for (j, s), before in zip(pairs, owed_before, strict=True):
            if before:
                continue  # decided before (a redelivery): its chain sees it through
            try:
                c = run(Candidate(j.event, s, j.trigger), env)
            except Exception as e:
                failed.append((j, s, _describe(e)))
                continue
            if c.stopped and log.isEnabledFor(logging.DEBUG):
                log.debug("%s for %s: %s", j.event.id, s.name, c.stopped)
            by_sub.setdefault(s.id, []).append((j, c))
        return by_sub, failed

    async def _subscription_errors(
        self,
        by_sub: dict[str, list[tuple[Job, Candidate]]],
        failed: list[tuple[Job, Subscription, str]],
    ) -> None:
        """What went wrong because of one subscription: on it (`last_error`), and a failed
        delivery in `deadletter` (replaying it republishes the event; only it is decided again)."""
        template_errors = [
            (j, c.sub, "; ".join(c.errors)) for cs in by_sub.values() for j, c in cs if c.errors
        ]
        if not failed and not template_errors:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for j, sub, error in [*template_errors, *failed]:
                last = SubscriptionError(error=error, event_id=j.event.id, at=utcnow())
                pipe.hset(self.k.subscription_errors, sub.id, last.model_dump_json())
            for j, sub, error in failed:
                log.error(
                    "%s for subscription %s failed (dead-lettered; other subscriptions go on): %s",
                    j.event.id,
                    sub.name,
                    error,
                )
                letter = DeadLetter(
                    stream=keys.INCIDENT_EVENTS,
                    fields={"data": j.event.model_dump_json()},
                    error=f"subscription {sub.name}: {error}",
                    extra={"subscription_id": sub.id, "subscription_name": sub.name},
                )
                pipe.xadd(self.k.stream(keys.DEADLETTER), {"data": letter.model_dump_json()})
                pipe.hincrby(self.k.notify_metrics, "subscription_failed", 1)
            await pipe.execute()

    def _commit(
        self,
        candidates: list[tuple[Job, Candidate]],
        env: Env,
        told_raw: dict[tuple[str, str], bytes | None],
        rate_raw: dict[str, bytes | None],
    ) -> tuple[Guarded, list[Decided]]:
        """One subscription's decisions, as one compare-and-apply guarded by what was read."""
        k, now = self.k, env.now
        sub = candidates[0][1].sub
        write, owed_now = Guarded(), []
        counts: Counter[str] = Counter()

        for key in dict.fromkeys(c.told_key for _, c in candidates if c.state is not None):
            state, raw = env.told[key], told_raw[key]
            if state is not None and state != _firing(raw):
                firing_key = k.firing(*key)
                write.expect(firing_key, raw.decode() if raw else None)
                write.do("SET", firing_key, state.model_dump_json(), "EX", FIRING_TTL_S)
        window, raw = env.rate.get(sub.id), rate_raw.get(sub.id)
        if sub.rate_limit is not None and window is not None and window != _window(raw):
            # Guards the digest too: overflow is only appended together with this write.
            ttl = int(sub.rate_limit.window) + 86_400
            write.expect(k.rate(sub.id), raw.decode() if raw else None)
            write.do("SET", k.rate(sub.id), window.model_dump_json(), "EX", ttl)

        for _job, c in candidates:
            incident_id = c.event.incident.id
            if c.held_until is not None:
                counts["held"] += 1
                self._hold(write, c, c.held_until)
            if (at := next_repeat(c, now)) is not None:
                reminder = DueItem(DueKind.REPEAT, sub.id, incident_id).member
                write.do("ZADD", k.due, score(at), reminder)
            if c.notification is None:
                continue
            if c.digest_window is not None:
                counts["digested"] += 1
                self._into_digest(write, c, c.notification, c.digest_window)
            else:
                counts["decided"] += 1
                owed_now.append(self._owe(write, sub, c.notification, now))
        for name, n in counts.items():
            write.do("HINCRBY", k.notify_metrics, name, n)
        return write, owed_now

    def _hold(self, write: Guarded, c: Candidate, until: datetime) -> None:
        """Look at this pair again when the mute ends (or at once if its silence is expired)."""
        kind = DueKind.REPEAT if c.trigger is Trigger.REPEAT else DueKind.RECHECK
        member = DueItem(kind, c.sub.id, c.event.incident.id).member
        write.do("ZADD", self.k.due, score(until), member)
        if c.held_by is not None:
            held = self.k.silence_held(c.held_by.id)
            write.do("SADD", held, member)
            write.do("EXPIREAT", held, int(c.held_by.ends_at.timestamp()) + 86_400)

    def _into_digest(self, write: Guarded, c: Candidate, n: Notification, start: int) -> None:
        """Keep an over-the-limit message for its window's digest, due when the window ends."""
        assert c.sub.rate_limit is not None
        end = window_end(start, c.sub.rate_limit)
        digest = self.k.digest(c.sub.id, start)
        write.do("RPUSH", digest, n.model_dump_json())
        write.do("EXPIREAT", digest, int(end.timestamp()) + 86_400)
        member = DueItem(DueKind.DIGEST, c.sub.id, str(start)).member
        write.do("ZADD", self.k.due, score(end + DIGEST_GRACE), member)
        self._record_digested(write, n, c.sub)

    def _owe(self, write: Guarded, sub: Subscription, n: Notification, now: datetime) -> Decided:
        """Record the message as owed before it is sent, at the end of its chain's outbox."""
        owed = Owed(
            status="pending", notification=n, decided_by=self.settings.consumer_name, decided_at=now
        )
        key = self.k.notification(n.event_id, sub.id)
        write.expect(key, None)
        write.do("SET", key, owed.model_dump_json(), "EX", NOTIFICATION_TTL_S)
        item = chain_item(sub.id, n.incident_id)
        outbox = self.k.outbox(sub.id, item.ref)
        write.do("RPUSH", outbox, n.event_id)
        write.do("EXPIRE", outbox, NOTIFICATION_TTL_S)
        # Due now, for this replica to claim at once (Leases.claim; other replicas' polls leave
        # it a moment, `OWED_GRACE_S`); unless someone holds the chain: then its holder sends
        # this after the rest.
        write.do("ZADD", self.k.due, "NX", score(utcnow()), item.member)  # not the batch's start
        return Decided(sub, owed)

    def _record_digested(self, write: Guarded, n: Notification, sub: Subscription) -> None:
        delivery = Delivery(
            event_id=n.event_id,
            incident_id=n.incident_id,
            subscription_id=sub.id,
            subscription_name=sub.name,
            url="(into the rate-limit digest)",
            outcome=DeliveryOutcome.DIGESTED,
            attempt=0,
            latency_ms=0.0,
            title=n.title,
            notify_type=n.notify_type,
            kind=n.kind.value,
        )
        data = delivery.model_dump_json(exclude_none=True)
        stream = self.k.stream(keys.DELIVERIES)
        write.do("XADD", stream, "MAXLEN", "~", self.settings.audit_maxlen, "*", "data", data)
        write.do("RPUSH", self.k.incident_deliveries(n.incident_id), data)

    async def _decide_digest(
        self, sub: Subscription, start: int, now: datetime
    ) -> tuple[Decided | None, bool]:
        """A rate-limit window's overflow as one owed message; False: try again later."""
        assert sub.rate_limit is not None
        k = self.k
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(k.rate(sub.id))
            pipe.lrange(k.digest(sub.id, start), 0, -1)
            rate_raw, raw_items = await pipe.execute()
        if not raw_items:
            return None, True
        # The id names the messages, so any straggler after this digest makes a second one.
        digest_id = f"digest:{start}:{hashlib.sha256(b''.join(raw_items)).hexdigest()[:12]}"
        items = [Notification.model_validate_json(i) for i in raw_items]
        n = render_digest(sub, items, window_end(start, sub.rate_limit), digest_id)
        write = Guarded()
        # Overflow is appended only together with a rate-window write: this guard sees any.
        write.expect(k.rate(sub.id), rate_raw.decode() if rate_raw else None)
        d = self._owe(write, sub, n, now)
        write.do("LTRIM", k.digest(sub.id, start), len(raw_items), -1)
        write.do("HINCRBY", k.notify_metrics, "digests", 1)
        if await self.cas(write):
            return d, True
        return None, False  # more overflow arrived meanwhile: the next tick sees it all

    async def _routes(self) -> list[Route]:
        """Routes for `continue: false` (shared/routing.py): none when no route stops others."""
        found = routes(await self.subs.current(), await self.policies.current())
        return found if any(not r.continue_ for r in found) else []


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:500]


def _firing(raw: bytes | None) -> FiringState | None:
    return FiringState.model_validate_json(raw) if raw else None


def _window(raw: bytes | None) -> RateWindow | None:
    return RateWindow.model_validate_json(raw) if raw else None
