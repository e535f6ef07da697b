"""The owner of incident state: applies classified posts, commands and quiet periods.

Only the replica holding the ownership lease (services/classify/lease.py) runs this, so it is
the single writer. It holds every open incident in memory (read once when it takes over) and
writes through once per batch: one atomic write, fenced by the lease, with the snapshots,
events, timelines, classifications, indexes and the stream acks together. Per batch of posts:
1. read — which posts were already applied; which incident each post's thread, incident key or
   parent names (a resolved one is read from Redis: a thread's post may reopen it);
2. decide — in stream order, which incident each post joins (correlation.choose) and what that
   does to it (incidents.apply_post), every earlier post already applied;
3. write — everything at once, only while the lease is still ours.
Nobody else writes, so nothing conflicts: many new incidents on one topic in one batch all open.
Every decision depends on the posts before it in the stream and on nothing else (not on how the
stream was cut into batches, nor on which replica read it), so any number of replicas, hand-offs
and take-overs reach the outcome one replica reaches. New incident ids are derived from the
post that opened them, so even the ids are the same.
A redelivered post is seen as applied and only acked; a write refused by the fence means the
lease moved: nothing was written, the entries stay pending and the next owner applies them.
"""

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic_core import to_json
from redis.asyncio import Redis

from services.classify import incidents
from services.classify.correlation import Policy, choose
from services.classify.lease import Lease, LeaseLost
from shared import keys, metrics
from shared.atomic import CompareAndApply, Guarded
from shared.consumer import Batch, Entry
from shared.models import (
    ArchivedIncident,
    Classification,
    Incident,
    IncidentCommand,
    IncidentEvent,
    Post,
    utcnow,
)
from shared.settings import Settings

log = logging.getLogger("redalert.classify")

INCIDENT_POSTS_KEPT = 10_000
LOAD_CHUNK = 1_000
ARCHIVE_BATCH = 500
# A resolved incident's keys also carry a TTL, a day past its retention: should no classify run
# to archive it, Redis still forgets it.
EXPIRY_SLACK_S = 86_400


@dataclass
class _Change:
    """What one batch did to one incident."""

    before: Incident | None  # as it was before the batch; None for a new incident
    after: Incident
    events: list[IncidentEvent] = field(default_factory=list)


def thread_keys(k: keys.Keys, post: Post) -> list[str]:
    """Keys that say "this post belongs with …": its thread, or its source's incident key."""
    own = []
    if post.incident_key:
        own.append(k.thread(post.source, f"key:{post.incident_key}"))
    if post.thread_id:
        own.append(k.thread(post.source, post.thread_id))
    return own


def lookup_keys(k: keys.Keys, post: Post) -> list[str]:
    """Its own keys first, then the post it replies to."""
    parent = [k.post_incident(f"{post.source}:{post.in_reply_to}")] if post.in_reply_to else []
    return [*thread_keys(k, post), *parent]


def incident_id_for(post: Post) -> str:
    """A new incident's id, from the post that opened it (a post opens at most one): replays,
    take-overs and replicas name it the same."""
    return hashlib.blake2b(post.key.encode(), digest_size=6).hexdigest()


def _count_classified(written: list[Classification]) -> None:
    for c in written:
        metrics.classified(c)


def _decode(value: bytes | None) -> str | None:
    return value.decode() if value is not None else None


class IncidentOwner:
    def __init__(self, redis: Redis, settings: Settings, lease: Lease) -> None:
        self.redis = redis
        self.settings = settings
        self.lease = lease
        self.k = keys.Keys(settings.namespace)
        self.cas = CompareAndApply(redis)
        self.policy = Policy(
            correlation_window_s=settings.correlation_window_s,
            similarity=settings.similarity,
            reopen_window_s=settings.reopen_window_s,
        )
        self.events_stream = self.k.stream(keys.INCIDENT_EVENTS)
        self.classified_stream = self.k.stream(keys.CLASSIFIED)
        self.archive_stream = self.k.stream(keys.ARCHIVE)
        self.retention_s = settings.retention_days * 86_400
        # Every open incident, and which are about each topic. Authoritative while the lease is
        # held (nobody else writes them); read again after a take-over or a failed write.
        self.open: dict[str, Incident] = {}
        self.by_topic: dict[str, set[str]] = {}
        self.stale = True
        self.batches_written = 0
        self.timings: Counter[str] = Counter()  # seconds per stage (see ClassifyService)

    # --- memory ----------------------------------------------------------------------------------

    def take_over(self) -> None:
        self.stale = True

    async def _fresh(self) -> None:
        """Read every open incident, if memory may not match Redis."""
        if not self.stale:
            return
        self.open.clear()
        self.by_topic.clear()
        ids = [i.decode() for i in await self.redis.zrange(self.k.open_incidents, 0, -1)]
        for incident in (await self._read_incidents(ids)).values():
            self._hold(incident)
        self.stale = False

    def _hold(self, incident: Incident) -> None:
        if incident.is_open:
            self.open[incident.id] = incident
            for t in incident.topics:
                self.by_topic.setdefault(t, set()).add(incident.id)
            return
        gone = self.open.pop(incident.id, None)
        for t in gone.topics if gone else ():
            ids = self.by_topic.get(t)
            if ids is not None:
                ids.discard(incident.id)
                if not ids:
                    del self.by_topic[t]

    async def _read_incidents(self, ids: Iterable[str]) -> dict[str, Incident]:
        ids = list(ids)
        out: dict[str, Incident] = {}
        for n in range(0, len(ids), LOAD_CHUNK):
            chunk = ids[n : n + LOAD_CHUNK]
            docs = await self.redis.mget([self.k.incident(i) for i in chunk])
            for i, doc in zip(chunk, docs, strict=True):
                if doc is not None:
                    out[i] = Incident.model_validate_json(doc)
        return out

    async def _known(self, ids: Iterable[str]) -> dict[str, Incident]:
        """These incidents as they stand: open ones from memory, others read from Redis."""
        wanted = set(ids)
        found = {i: self.open[i] for i in wanted if i in self.open}
        found.update(await self._read_incidents(sorted(wanted - found.keys())))
        return found

    def _fenced(self) -> Guarded:
        w = Guarded()
        w.expect(self.lease.key, self.lease.token)
        return w

    async def _write(self, w: Guarded, changes: Iterable[_Change]) -> None:
        try:
            written = await self.cas(w)
        except BaseException:
            self.stale = True  # unknown whether it was written: read Redis again
            raise
        if not written:
            self.stale = True
            self.lease.held = False
            raise LeaseLost("the ownership lease moved; nothing of this batch was written")
        for ch in changes:
            self._hold(ch.after)
        self.batches_written += 1

    # --- posts ---------------------------------------------------------------------------------

    async def apply_posts(
        self, batch: Batch, items: Sequence[tuple[Entry, Classification]]
    ) -> None:
        if not items:
            return
        clock = time.perf_counter
        t0 = clock()
        await self._fresh()
        k = self.k
        lookups = list(dict.fromkeys(key for _, c in items for key in lookup_keys(k, c.post)))
        # Two commands for the batch, not one per key: each reply costs more to read than the
        # key does to find.
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.mget([k.applied(c.post.key) for _, c in items])
            if lookups:
                pipe.mget(lookups)
            done, *named = await pipe.execute()
        applied = {c.post.key for (_, c), v in zip(items, done, strict=True) if v is not None}
        found = named[0] if named else []
        correlation = {
            key: v.decode() for key, v in zip(lookups, found, strict=True) if v is not None
        }
        state = await self._known(correlation.values())
        t1 = clock()
        fresh, changes = self._decide([c for _, c in items], applied, correlation, state, utcnow())
        t2 = clock()
        w = self._fenced()
        w.then(lambda: _count_classified(fresh))
        # Per batch, not per post: a thread's key is set once to where its last post went, and
        # an incident's new posts are appended in one command (a thread's posts mostly come
        # together). One atomic write, so only the end state is ever seen.
        joined: dict[str, str] = {}
        summaries: dict[str, list[bytes]] = {}
        for c in fresh:
            self._write_classification(w, c, joined, summaries)
        retention = max(1, int(self.retention_s))  # forgotten with the incident
        for key, incident_id in joined.items():
            w.do("SET", key, incident_id, "EX", retention)
        for incident_id, posts in summaries.items():
            w.do("RPUSH", k.incident_posts(incident_id), *posts)
            w.do("LTRIM", k.incident_posts(incident_id), -INCIDENT_POSTS_KEPT, -1)
        for ch in changes.values():
            self._write_incident(w, ch.before, ch.after, ch.events)
        w.do(*batch.xack([e for e, _ in items]))
        t3 = clock()
        await self._write(w, changes.values())
        t4 = clock()
        self.timings["read"] += t1 - t0
        self.timings["decide"] += t2 - t1
        self.timings["encode"] += t3 - t2
        self.timings["write"] += t4 - t3

    def _decide(
        self,
        items: list[Classification],
        applied: set[str],
        correlation: dict[str, str],
        state: dict[str, Incident],
        now: datetime,
    ) -> tuple[list[Classification], dict[str, _Change]]:
        """Apply the batch's posts in order; return those applied now and what they changed.
        `applied` and `correlation` grow as it goes; `state` holds every incident touched, as
        it stands after the posts so far."""
        k = self.k
        fresh: list[Classification] = []
        changes: dict[str, _Change] = {}
        by_topic = {t: set(ids) for t, ids in self.by_topic.items()}  # grows with new incidents
        for c in items:
            if c.post.key in applied:
                continue  # redelivered, or published twice: acked, not applied again
            applied.add(c.post.key)
            fresh.append(c)
            named = next((correlation[x] for x in lookup_keys(k, c.post) if x in correlation), None)
            by_key = state.get(named) if named else None
            candidates: list[Incident] = []
            if by_key is None:  # a post of a known thread joins it: no need to look further
                candidate_ids = {i for t in c.topics for i in by_topic.get(t, ())}
                for i in sorted(candidate_ids):
                    x = state.get(i) or self.open.get(i)
                    if x is not None and x.is_open:
                        candidates.append(x)
            choice = choose(c, by_key=by_key, candidates=candidates, now=now, policy=self.policy)
            target = incident_id_for(c.post) if choice.new else choice.incident_id
            c.incident_id = None
            if target is None:
                continue
            before = state.get(target) or self.open.get(target)
            t = incidents.apply_post(before, c, new_id=target, now=now)
            if t.incident is None:
                continue
            c.incident_id = target
            state[target] = t.incident
            change = changes.setdefault(target, _Change(before, t.incident))
            change.after = t.incident
            change.events += t.events
            for topic in t.incident.topics:  # a candidate for the batch's next posts
                by_topic.setdefault(topic, set()).add(target)
            for key in [*thread_keys(k, c.post), k.post_incident(c.post.key)]:
                correlation[key] = target
        return fresh, changes

    # --- commands ------------------------------------------------------------------------------

    async def apply_commands(
        self, batch: Batch, items: Sequence[tuple[Entry, IncidentCommand]]
    ) -> None:
        if not items:
            return
        await self._fresh()
        k = self.k
        async with self.redis.pipeline(transaction=False) as pipe:
            for _, cmd in items:
                pipe.exists(k.command_applied(cmd.id))
                if cmd.incident_id is None:
                    # The model guarantees source and incident_key when incident_id is absent.
                    pipe.get(k.thread(str(cmd.source), f"key:{cmd.incident_key}"))
            replies = iter(await pipe.execute())
        named: list[tuple[Entry, IncidentCommand, bool, str | None]] = []
        for entry, cmd in items:
            done = bool(next(replies))
            incident_id = cmd.incident_id or _decode(next(replies))
            named.append((entry, cmd, done, incident_id))
        state = await self._known(i for *_, i in named if i)
        now = utcnow()
        w = self._fenced()
        changes: dict[str, _Change] = {}
        acked: list[Entry] = []
        for entry, cmd, done, incident_id in named:
            if done:
                acked.append(entry)
                continue
            if incident_id is None:
                # Its post may still be on its way (posts and commands are separate streams):
                # leave it pending; after max deliveries it is dead-lettered with this reason.
                batch.fail(entry, f"no incident for {cmd.source} key {cmd.incident_key!r} (yet)")
                continue
            incident = state.get(incident_id)
            if incident is None:
                batch.deadletter(entry, f"incident_id: no incident {incident_id!r}")
                continue
            t = incidents.apply_command(incident, cmd, now=now)
            w.do("SET", k.command_applied(cmd.id), "1", "EX", self.settings.dedup_ttl_s)
            acked.append(entry)
            if not (t.changed and t.incident is not None):
                log.info("command %s on %s changed nothing", cmd.action, incident.id)
                continue
            state[incident_id] = t.incident
            change = changes.setdefault(incident_id, _Change(incident, t.incident))
            change.after = t.incident
            change.events += t.events
        for ch in changes.values():
            self._write_incident(w, ch.before, ch.after, ch.events)
        if acked:
            w.do(*batch.xack(acked))
        await self._write(w, changes.values())

    # --- quiet periods -------------------------------------------------------------------------

    async def sweep_quiet(self) -> int:
        """Resolve open incidents nobody has posted about for the quiet period. Returns how many."""
        quiet = self.settings.quiet_period_s
        if quiet <= 0:
            return 0
        await self._fresh()
        now = utcnow()
        changes = []
        for incident in list(self.open.values()):
            t = incidents.apply_quiet(incident, now=now, quiet_period_s=quiet)
            if t.changed and t.incident is not None:
                changes.append(_Change(incident, t.incident, t.events))
        if not changes:
            return 0
        w = self._fenced()
        for ch in changes:
            self._write_incident(w, ch.before, ch.after, ch.events)
        await self._write(w, changes)
        return len(changes)

    # --- writing -------------------------------------------------------------------------------

    def _write_classification(
        self,
        w: Guarded,
        c: Classification,
        joined: dict[str, str],
        summaries: dict[str, list[bytes]],
    ) -> None:
        """The post's own writes; which incident its keys now name (`joined`) and its summary
        for the incident's posts (`summaries`) are written once for the batch."""
        k, post, ttl = self.k, c.post, self.settings.dedup_ttl_s
        w.do("SET", k.applied(post.key), c.incident_id or "-", "EX", ttl)
        w.do(
            "XADD", self.classified_stream, "MAXLEN", "~", self.settings.audit_maxlen, "*",
            "data", c.model_dump_json(exclude_none=True),
        )  # fmt: skip
        if c.incident_id is None:
            return
        joined[k.post_incident(post.key)] = c.incident_id
        for key in thread_keys(k, post):
            joined[key] = c.incident_id
        summary = {
            "id": post.id,
            "source": post.source,
            "author": post.author,
            "url": post.url,
            "text": post.text,
            "severity": c.severity.value,
            "all_clear": c.all_clear,
            "stand_down": c.stand_down,
            "topics": c.topics,
            "published_at": post.published_at.isoformat() if post.published_at else None,
            "received_at": post.received_at.isoformat(),
        }
        summaries.setdefault(c.incident_id, []).append(to_json(summary))

    def _write_incident(
        self, w: Guarded, before: Incident | None, after: Incident, events: list[IncidentEvent]
    ) -> None:
        w.then(lambda: metrics.incident_events(events))
        k = self.k
        # KEEPTTL: a post joining a resolved incident must not lift its expiry.
        w.do("SET", k.incident(after.id), after.model_dump_json(), "KEEPTTL")
        if before is None:
            w.do("ZADD", k.incidents, after.opened_at.timestamp(), after.id)
        if events:
            data = [event.model_dump_json(exclude_none=True) for event in events]
            w.do("RPUSH", k.incident_timeline(after.id), *data)
            for d in data:
                w.do("XADD", self.events_stream, "*", "data", d)
        self._index(w, before, after)

    def _kept(self, incident_id: str) -> list[str]:
        """Everything that hangs off an incident and goes with it."""
        k = self.k
        return [
            k.incident(incident_id),
            k.incident_posts(incident_id),
            k.incident_timeline(incident_id),
            k.incident_deliveries(incident_id),
        ]

    def _index(self, w: Guarded, before: Incident | None, after: Incident) -> None:
        """Keep the indexes in step: open incidents (the next owner starts from them) and
        resolved ones (expired after retention)."""
        k = self.k
        was_open = before is None or before.is_open
        if after.is_open:
            active = (after.last_post_at or after.updated_at).timestamp()
            w.do("ZADD", k.open_incidents, active, after.id)
            if not was_open:  # reopened: kept again
                w.do("ZREM", k.resolved_incidents, after.id)
                for key in self._kept(after.id):
                    w.do("PERSIST", key)
        elif was_open:
            w.do("ZREM", k.open_incidents, after.id)
            resolved = (after.resolved_at or after.updated_at).timestamp()
            w.do("ZADD", k.resolved_incidents, resolved, after.id)
            ttl = int(self.retention_s + EXPIRY_SLACK_S)
            for key in self._kept(after.id):
                w.do("EXPIRE", key, ttl)

    # --- retention -----------------------------------------------------------------------------

    async def archive_expired(self) -> int:
        """Resolved incidents past retention: their summary to the archive, the rest deleted.
        Returns how many."""
        k = self.k
        cutoff = utcnow().timestamp() - self.retention_s
        total = 0
        while True:
            ids = [
                i.decode()
                for i in await self.redis.zrangebyscore(
                    k.resolved_incidents, "-inf", cutoff, start=0, num=ARCHIVE_BATCH
                )
            ]
            if not ids:
                return total
            found = await self._read_incidents(ids)
            w = self._fenced()
            for incident_id in ids:
                incident = found.get(incident_id)
                if incident is not None and incident.is_open:  # reopened: not ours to drop
                    w.do("ZREM", k.resolved_incidents, incident_id)
                    continue
                if incident is not None:
                    summary = ArchivedIncident.of(incident).model_dump_json(exclude_none=True)
                    w.do(
                        "XADD", self.archive_stream, "MAXLEN", "~", self.settings.archive_maxlen,
                        "*", "data", summary,
                    )  # fmt: skip
                    total += 1
                w.do("DEL", *self._kept(incident_id))
                w.do("ZREM", k.incidents, incident_id)
                w.do("ZREM", k.resolved_incidents, incident_id)
            await self._write(w, ())
            if len(ids) < ARCHIVE_BATCH:
                return total
