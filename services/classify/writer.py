"""The single writer of incident state: applies classified posts and commands to incidents.

Per batch: read (which posts were already applied, which incident each post's thread or parent
belongs to, the incidents' snapshots), compute every transition with the pure state machine,
then write each incident's transition — snapshot, events, timeline, classifications, stream
acks — as one compare-and-apply guarded by the incident's version and the posts' "applied"
markers. A replica that lost a race recomputes from what the winner wrote; a redelivered post is
seen as applied and only acked. So no update is lost and no transition is emitted twice.
"""

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from redis.asyncio import Redis

from services.classify import incidents
from shared import keys
from shared.atomic import CompareAndApply, Guarded
from shared.consumer import Batch, Entry
from shared.models import Classification, Incident, IncidentCommand, IncidentEvent, Post, utcnow
from shared.settings import Settings

log = logging.getLogger("redalert.classify")

MAX_CONFLICT_RETRIES = 8
CORRELATION_TTL_S = 30 * 86_400
INCIDENT_POSTS_KEPT = 10_000


@dataclass
class _Item:
    entry: Entry
    c: Classification


@dataclass
class _Group:
    incident_id: str | None  # None: the posts belong to no incident
    new: bool = False
    items: list[_Item] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)  # correlation keys a new incident takes


def thread_keys(k: keys.Keys, post: Post) -> list[str]:
    """Keys that say "this post belongs with …": its thread, or its source's incident key."""
    own = []
    if post.incident_key:
        own.append(k.thread(post.source, f"key:{post.incident_key}"))
    if post.thread_id:
        own.append(k.thread(post.source, post.thread_id))
    return own


def parent_key(k: keys.Keys, post: Post) -> str | None:
    return k.post_incident(f"{post.source}:{post.in_reply_to}") if post.in_reply_to else None


class IncidentWriter:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.k = keys.Keys(settings.namespace)
        self.cas = CompareAndApply(redis)
        self.events_stream = self.k.stream(keys.INCIDENT_EVENTS)
        self.classified_stream = self.k.stream(keys.CLASSIFIED)

    # --- posts ---------------------------------------------------------------------------------

    async def apply_posts(
        self, batch: Batch, items: Sequence[tuple[Entry, Classification]]
    ) -> None:
        pending = [_Item(e, c) for e, c in items]
        for _ in range(MAX_CONFLICT_RETRIES):
            if not pending:
                return
            groups, done = await self._group(pending)
            if done:
                await self.redis.execute_command(*batch.xack([i.entry for i in done]))
            snapshots = await self._load([g.incident_id for g in groups if not g.new])
            now = utcnow()
            writes = [self._plan_posts(batch, g, snapshots, now) for g in groups]
            applied = await self._run(writes)
            pending = [i for g, ok in zip(groups, applied, strict=True) if not ok for i in g.items]
        for item in pending:
            batch.fail(item.entry, f"incident write conflicted {MAX_CONFLICT_RETRIES} times")

    async def _group(self, items: list[_Item]) -> tuple[list[_Group], list[_Item]]:
        """Decide which incident each post joins; split off posts that were already applied."""
        k = self.k
        lookups = [
            [*thread_keys(k, i.c.post), *filter(None, [parent_key(k, i.c.post)])] for i in items
        ]
        async with self.redis.pipeline(transaction=False) as pipe:
            for item, keys_ in zip(items, lookups, strict=True):
                pipe.exists(k.applied(item.c.post.key))
                for key in keys_:
                    pipe.get(key)
            replies = iter(await pipe.execute())

        in_batch: dict[str, str] = {}  # correlation key -> incident id, for keys set by this batch
        groups: dict[str | None, _Group] = {}
        done: list[_Item] = []
        for item, keys_ in zip(items, lookups, strict=True):
            already = next(replies)
            stored = {key: next(replies) for key in keys_}
            if already:
                done.append(item)
                continue
            found = None
            for key in keys_:  # its own thread first, then the post it replies to
                value = in_batch.get(key) or stored[key]
                if value:
                    found = value if isinstance(value, str) else value.decode()
                    break
            own = thread_keys(k, item.c.post)
            new = found is None and incidents.opens_incident(item.c)
            if new:
                found = incidents.new_incident_id()
            group = groups.get(found)
            if group is None:
                group = groups[found] = _Group(found, new=new, claims=own if new else [])
            group.items.append(item)
            if found is not None:
                for key in [*own, k.post_incident(item.c.post.key)]:
                    in_batch[key] = found
        return list(groups.values()), done

    async def _load(self, ids: list[str | None]) -> dict[str, tuple[Incident, int]]:
        wanted = [i for i in ids if i is not None]
        if not wanted:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in wanted:
                pipe.get(self.k.incident(i))
                pipe.get(self.k.incident_version(i))
            raw = await pipe.execute()
        out = {}
        for n, i in enumerate(wanted):
            doc, version = raw[2 * n], raw[2 * n + 1]
            if doc is not None:
                out[i] = (Incident.model_validate_json(doc), int(version or 0))
        return out

    def _plan_posts(
        self, batch: Batch, g: _Group, snapshots: dict[str, tuple[Incident, int]], now: datetime
    ) -> Guarded:
        k, w = self.k, Guarded()
        incident: Incident | None = None
        if g.incident_id is not None:
            incident, version = snapshots.get(g.incident_id, (None, 0))
            w.expect(k.incident_version(g.incident_id), version or None)
            for key in g.claims:
                w.expect(key, None)
        events: list[IncidentEvent] = []
        for item in g.items:
            post = item.c.post
            w.expect(k.applied(post.key), None)
            if g.incident_id is not None:
                t = incidents.apply_post(incident, item.c, new_id=g.incident_id, now=now)
                incident = t.incident or incident
                events += t.events
            item.c.incident_id = incident.id if incident else None
            self._write_classification(w, item.c)
        if incident is not None:
            self._write_incident(w, incident, events, g)
        w.do(*batch.xack([i.entry for i in g.items]))
        return w

    def _write_classification(self, w: Guarded, c: Classification) -> None:
        k, post, ttl = self.k, c.post, self.settings.dedup_ttl_s
        w.do("SET", k.applied(post.key), c.incident_id or "-", "EX", ttl)
        w.do(
            "XADD",
            self.classified_stream,
            "MAXLEN",
            "~",
            self.settings.audit_maxlen,
            "*",
            "data",
            c.model_dump_json(exclude_none=True),
        )
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
            "published_at": post.published_at.isoformat() if post.published_at else None,
            "received_at": post.received_at.isoformat(),
        }
        w.do("RPUSH", k.incident_posts(c.incident_id), _json(summary))
        w.do("LTRIM", k.incident_posts(c.incident_id), -INCIDENT_POSTS_KEPT, -1)

    def _write_incident(
        self, w: Guarded, incident: Incident, events: list[IncidentEvent], g: _Group
    ) -> None:
        k = self.k
        w.do("SET", k.incident(incident.id), incident.model_dump_json())
        w.do("SET", k.incident_version(incident.id), incident.version)
        if g.new:
            w.do("ZADD", k.incidents, incident.opened_at.timestamp(), incident.id)
        for event in events:
            data = event.model_dump_json(exclude_none=True)
            w.do("RPUSH", k.incident_timeline(incident.id), data)
            w.do("XADD", self.events_stream, "*", "data", data)

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
        for _ in range(MAX_CONFLICT_RETRIES):
            if await self.redis.exists(k.command_applied(cmd.id)):
                await self.redis.execute_command(*batch.xack([entry]))
                return
            snapshot = (await self._load([cmd.incident_id])).get(cmd.incident_id)
            if snapshot is None:
                batch.deadletter(entry, f"incident_id: no incident {cmd.incident_id!r}")
                return
            incident, version = snapshot
            t = incidents.apply_command(incident, cmd, now=utcnow())
            w = Guarded()
            w.expect(k.incident_version(incident.id), version or None)
            w.expect(k.command_applied(cmd.id), None)
            w.do("SET", k.command_applied(cmd.id), "1", "EX", self.settings.dedup_ttl_s)
            if t.changed and t.incident is not None:
                self._write_incident(w, t.incident, t.events, _Group(incident.id))
            w.do(*batch.xack([entry]))
            if await self.cas(w):
                if not t.events:
                    log.info("command %s on %s changed nothing", cmd.action, incident.id)
                return
        batch.fail(entry, f"incident write conflicted {MAX_CONFLICT_RETRIES} times")


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))
