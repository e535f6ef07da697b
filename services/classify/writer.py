"""The single writer of incident state: applies classified posts, commands and quiet periods.

Per batch of posts:
1. read — which posts were already applied; which incident each post's thread, incident key or
   parent names; which open incidents share its topics; those incidents' snapshots and versions;
2. decide — in stream order, which incident each post joins (correlation.choose) and what that
   does to it (incidents.apply_post), with the batch's own earlier posts already applied;
3. write — each incident's transition (snapshot, events, timeline, classifications, indexes,
   stream acks) as one compare-and-apply guarded by the incident's version, the posts' "applied"
   markers and, for a new incident, its thread keys and topics.
A replica that lost a race recomputes from what the winner wrote; a redelivered post is seen as
applied and only acked. So no update is lost and no transition is emitted twice.
"""

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from redis.asyncio import Redis

from services.classify import incidents
from services.classify.correlation import Policy, choose
from shared import keys
from shared.atomic import CompareAndApply, Guarded
from shared.consumer import Batch, Entry
from shared.models import (
    Classification,
    Incident,
    IncidentCommand,
    IncidentEvent,
    Post,
    utcnow,
)
from shared.settings import Settings

log = logging.getLogger("redalert.classify")

MAX_CONFLICT_RETRIES = 8
CORRELATION_TTL_S = 30 * 86_400
INCIDENT_POSTS_KEPT = 10_000
SWEEP_BATCH = 100


@dataclass
class _Item:
    entry: Entry
    c: Classification


@dataclass
class _Group:
    """Posts of one batch that go to one incident (or to none), and what they do to it."""

    incident_id: str | None
    before: Incident | None = None  # the snapshot read; None for a new incident
    after: Incident | None = None  # its state once the group's posts are applied
    version: int = 0
    items: list[_Item] = field(default_factory=list)
    events: list[IncidentEvent] = field(default_factory=list)
    guards: list[tuple[str, str | None]] = field(default_factory=list)


@dataclass
class _View:
    """What the writer read for one batch."""

    applied: dict[str, bool]
    correlation: dict[str, str]  # correlation key -> incident id
    by_topic: dict[str, list[str]]  # topic -> ids of open incidents recently active
    topic_versions: dict[str, str | None]
    incidents: dict[str, Incident]
    versions: dict[str, int]


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


def _decode(value: bytes | None) -> str | None:
    return value.decode() if value is not None else None


class IncidentWriter:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.k = keys.Keys(settings.namespace)
        self.cas = CompareAndApply(redis)
        self.policy = Policy(
            correlation_window_s=settings.correlation_window_s,
            similarity=settings.similarity,
            reopen_window_s=settings.reopen_window_s,
        )
        self.events_stream = self.k.stream(keys.INCIDENT_EVENTS)
        self.classified_stream = self.k.stream(keys.CLASSIFIED)
        self.conflicts = 0  # compare-and-apply writes that lost a race (and were recomputed)

    # --- posts ---------------------------------------------------------------------------------

    async def apply_posts(
        self, batch: Batch, items: Sequence[tuple[Entry, Classification]]
    ) -> None:
        pending = [_Item(e, c) for e, c in items]
        for _ in range(MAX_CONFLICT_RETRIES):
            if not pending:
                return
            now = utcnow()
            view = await self._read(pending, now)
            groups, done = self._decide(pending, view, now)
            if done:
                await self.redis.execute_command(*batch.xack([i.entry for i in done]))
            writes = [self._plan_posts(batch, g) for g in groups]
            applied = await self._run(writes)
            lost = [g for g, ok in zip(groups, applied, strict=True) if not ok]
            self.conflicts += len(lost)
            pending = [i for g in lost for i in g.items]
        for item in pending:
            batch.fail(item.entry, f"incident write conflicted {MAX_CONFLICT_RETRIES} times")

    async def _read(self, items: list[_Item], now: datetime) -> _View:
        k = self.k
        lookups = list(dict.fromkeys(key for i in items for key in lookup_keys(k, i.c.post)))
        topics = list(dict.fromkeys(t for i in items for t in i.c.topics))
        since = now.timestamp() - self.policy.correlation_window_s
        async with self.redis.pipeline(transaction=False) as pipe:
            for item in items:
                pipe.exists(k.applied(item.c.post.key))
            for key in lookups:
                pipe.get(key)
            for t in topics:
                pipe.zrangebyscore(k.open_by_topic(t), since, "+inf")
                pipe.get(k.topic_version(t))
            replies = iter(await pipe.execute())
        applied = {i.c.post.key: bool(next(replies)) for i in items}
        correlation = {key: v.decode() for key in lookups if (v := next(replies)) is not None}
        by_topic, topic_versions = {}, {}
        for t in topics:
            by_topic[t] = [i.decode() for i in next(replies)]
            topic_versions[t] = _decode(next(replies))
        wanted = set(correlation.values()) | {i for ids in by_topic.values() for i in ids}
        snapshots = await self._load(sorted(wanted))
        return _View(
            applied=applied,
            correlation=correlation,
            by_topic=by_topic,
            topic_versions=topic_versions,
            incidents={i: inc for i, (inc, _) in snapshots.items()},
            versions={i: v for i, (_, v) in snapshots.items()},
        )

    def _decide(
        self, items: list[_Item], view: _View, now: datetime
    ) -> tuple[list[_Group], list[_Item]]:
        k = self.k
        state = dict(view.incidents)  # evolves as the batch's posts are applied, in order
        correlation = dict(view.correlation)  # and so do the thread keys
        new_ids: list[str] = []
        groups: dict[str | None, _Group] = {}
        done: list[_Item] = []
        for item in items:
            c = item.c
            if view.applied[c.post.key]:
                done.append(item)
                continue
            named = next(
                (correlation[key] for key in lookup_keys(k, c.post) if key in correlation), None
            )
            candidate_ids = {i for t in c.topics for i in view.by_topic.get(t, [])} | set(new_ids)
            choice = choose(
                c,
                by_key=state.get(named) if named else None,
                candidates=[state[i] for i in sorted(candidate_ids) if i in state],
                now=now,
                policy=self.policy,
            )
            target = choice.incident_id
            group = groups.get(target) if target else groups.get(None)
            if choice.new:
                target = incidents.new_incident_id()
                new_ids.append(target)
                group = groups[target] = _Group(target)
                for key in thread_keys(k, c.post):  # the thread is this incident's now
                    group.guards.append((key, view.correlation.get(key)))
                for t in c.topics:  # nobody opened another incident on this topic meanwhile
                    group.guards.append((k.topic_version(t), view.topic_versions.get(t)))
            elif group is None:
                group = groups[target] = _Group(
                    target,
                    before=view.incidents.get(target) if target else None,
                    version=view.versions.get(target, 0) if target else 0,
                )
            if target is not None:
                t = incidents.apply_post(state.get(target), c, new_id=target, now=now)
                if t.incident is not None:
                    state[target] = t.incident
                group.events += t.events
                for key in [*thread_keys(k, c.post), k.post_incident(c.post.key)]:
                    correlation[key] = target
            c.incident_id = target
            group.items.append(item)
        for g in groups.values():
            g.after = state.get(g.incident_id) if g.incident_id else None
        return list(groups.values()), done

    async def _load(self, ids: list[str]) -> dict[str, tuple[Incident, int]]:
        if not ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.get(self.k.incident(i))
                pipe.get(self.k.incident_version(i))
            raw = await pipe.execute()
        out = {}
        for n, i in enumerate(ids):
            doc, version = raw[2 * n], raw[2 * n + 1]
            if doc is not None:
                out[i] = (Incident.model_validate_json(doc), int(version or 0))
        return out

    def _plan_posts(self, batch: Batch, g: _Group) -> Guarded:
        w = Guarded()
        if g.incident_id is not None:
            w.expect(self.k.incident_version(g.incident_id), g.version or None)
        for key, value in g.guards:
            w.expect(key, value)
        for item in g.items:
            w.expect(self.k.applied(item.c.post.key), None)
            self._write_classification(w, item.c)
        if g.after is not None:
            self._write_incident(w, g.before, g.after, g.events)
        w.do(*batch.xack([i.entry for i in g.items]))
        return w

    def _write_classification(self, w: Guarded, c: Classification) -> None:
        k, post, ttl = self.k, c.post, self.settings.dedup_ttl_s
        w.do("SET", k.applied(post.key), c.incident_id or "-", "EX", ttl)
        w.do(
            "XADD", self.classified_stream, "MAXLEN", "~", self.settings.audit_maxlen, "*",
            "data", c.model_dump_json(exclude_none=True),
        )  # fmt: skip
        if c.incident_id is None:
            return
        w.do("SET", k.post_incident(post.key), c.incident_id, "EX", CORRELATION_TTL_S)
        for key in thread_keys(k, post):
            w.do("SET", key, c.incident_id, "EX", CORRELATION_TTL_S)
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
        w.do("RPUSH", k.incident_posts(c.incident_id), json.dumps(summary))
        w.do("LTRIM", k.incident_posts(c.incident_id), -INCIDENT_POSTS_KEPT, -1)

    def _write_incident(
        self, w: Guarded, before: Incident | None, after: Incident, events: list[IncidentEvent]
    ) -> None:
        k = self.k
        w.do("SET", k.incident(after.id), after.model_dump_json())
        w.do("SET", k.incident_version(after.id), after.version)
        if before is None:
            w.do("ZADD", k.incidents, after.opened_at.timestamp(), after.id)
        for event in events:
            data = event.model_dump_json(exclude_none=True)
            w.do("RPUSH", k.incident_timeline(after.id), data)
            w.do("XADD", self.events_stream, "*", "data", data)
        self._index(w, before, after)

    def _index(self, w: Guarded, before: Incident | None, after: Incident) -> None:
        """Keep the open-incident indexes (quiet sweep, topic correlation) in step."""
        k = self.k
        known = set(before.topics) if before is not None and before.is_open else set()
        if after.is_open:
            active = (after.last_post_at or after.updated_at).timestamp()
            w.do("ZADD", k.open_incidents, active, after.id)
            for t in after.topics:
                w.do("ZADD", k.open_by_topic(t), active, after.id)
                if t not in known:
                    w.do("INCR", k.topic_version(t))
        elif before is not None and before.is_open:
            w.do("ZREM", k.open_incidents, after.id)
            for t in after.topics:
                w.do("ZREM", k.open_by_topic(t), after.id)

    async def _run(self, writes: list[Guarded]) -> list[bool]:
        if not writes:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for w in writes:
                await self.cas.queue(pipe, w)
            results = await pipe.execute()
        return [r == 0 for r in results]

    # --- commands ------------------------------------------------------------------------------

    async def apply_commands(
        self, batch: Batch, items: Sequence[tuple[Entry, IncidentCommand]]
    ) -> None:
        for entry, cmd in items:
            await self._apply_command(batch, entry, cmd)

    async def _apply_command(self, batch: Batch, entry: Entry, cmd: IncidentCommand) -> None:
        k = self.k
        incident_id = cmd.incident_id
        if incident_id is None:
            # The model guarantees source and incident_key when incident_id is absent.
            key = k.thread(str(cmd.source), f"key:{cmd.incident_key}")
            incident_id = _decode(await self.redis.get(key))
            if incident_id is None:
                # Its post may still be on its way (posts and commands are separate streams):
                # leave it pending; after max deliveries it is dead-lettered with this reason.
                batch.fail(entry, f"no incident for {cmd.source} key {cmd.incident_key!r} (yet)")
                return
        for _ in range(MAX_CONFLICT_RETRIES):
            if await self.redis.exists(k.command_applied(cmd.id)):
                await self.redis.execute_command(*batch.xack([entry]))
                return
            snapshot = (await self._load([incident_id])).get(incident_id)
            if snapshot is None:
                batch.deadletter(entry, f"incident_id: no incident {incident_id!r}")
                return
            incident, version = snapshot
            t = incidents.apply_command(incident, cmd, now=utcnow())
            w = Guarded()
            w.expect(k.incident_version(incident.id), version or None)
            w.expect(k.command_applied(cmd.id), None)
            w.do("SET", k.command_applied(cmd.id), "1", "EX", self.settings.dedup_ttl_s)
            if t.changed and t.incident is not None:
                self._write_incident(w, incident, t.incident, t.events)
            w.do(*batch.xack([entry]))
            if await self.cas(w):
                if not t.events:
                    log.info("command %s on %s changed nothing", cmd.action, incident.id)
                return
            self.conflicts += 1
        batch.fail(entry, f"incident write conflicted {MAX_CONFLICT_RETRIES} times")

    # --- quiet periods -------------------------------------------------------------------------

    async def sweep_quiet(self) -> int:
        """Resolve open incidents nobody has posted about for the quiet period. Returns how many."""
        quiet = self.settings.quiet_period_s
        if quiet <= 0:
            return 0
        now = utcnow()
        ids = await self.redis.zrangebyscore(
            self.k.open_incidents, "-inf", now.timestamp() - quiet, start=0, num=SWEEP_BATCH
        )
        resolved = 0
        for incident_id, (incident, version) in (
            await self._load([i.decode() for i in ids])
        ).items():
            t = incidents.apply_quiet(incident, now=now, quiet_period_s=quiet)
            w = Guarded()
            w.expect(self.k.incident_version(incident_id), version or None)
            if t.changed and t.incident is not None:
                self._write_incident(w, incident, t.incident, t.events)
            else:  # stale index entry: the incident is resolved already
                w.do("ZREM", self.k.open_incidents, incident_id)
            if await self.cas(w) and t.changed:
                resolved += 1
        return resolved
