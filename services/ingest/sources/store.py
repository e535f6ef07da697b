"""Sources in Redis: their specs, when each is due, its cursor, its status, and its lease.

A poll's results — the new cursor, the counters, the next due time — are written as one
compare-and-apply guarded by the poller's lease: a replica whose lease expired (it stalled) or
whose source was deleted meanwhile writes nothing, so a cursor never goes backwards and a deleted
source does not come back.
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from services.ingest.sources.base import Cursor
from services.ingest.sources.spec import Source
from shared.atomic import CompareAndApply, Guarded
from shared.keys import Keys

RECENT_ERRORS = 20

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def _s(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class SourceStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.k = keys
        self.cas = CompareAndApply(redis)
        self._release = redis.register_script(_RELEASE)
        self._renew = redis.register_script(_RENEW)

    # --- specs ---------------------------------------------------------------------------------

    async def all(self) -> list[Source]:
        raw = await self.redis.hgetall(self.k.sources)
        return sorted((Source.model_validate_json(v) for v in raw.values()), key=lambda s: s.name)

    async def get(self, name: str) -> Source | None:
        raw = await self.redis.hget(self.k.sources, name)
        return Source.model_validate_json(raw) if raw else None

    async def add(self, source: Source, *, now: float) -> bool:
        """False if a source of that name exists."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(self.k.sources, source.name, source.stored())
            if source.polled:  # harmless if the name was taken: see `forget`
                pipe.zadd(self.k.sources_due, {source.name: now}, nx=True)
            added, *_ = await pipe.execute()
        return bool(added)

    async def schedule_all(self, *, now: float) -> None:
        """Every polled source is on the schedule (after a start, whatever happened before)."""
        polled = {s.name: now for s in await self.all() if s.polled}
        if polled:
            await self.redis.zadd(self.k.sources_due, polled, nx=True)

    async def forget(self, name: str) -> None:
        """Off the schedule: the source is gone, or is not polled."""
        await self.redis.zrem(self.k.sources_due, name)

    async def delete(self, name: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.k.sources, name)
            pipe.zrem(self.k.sources_due, name)
            pipe.delete(
                self.k.source_cursor(name),
                self.k.source_status(name),
                self.k.source_errors(name),
                self.k.source_lease(name),  # a poll in flight then writes nothing back
            )
            removed, *_ = await pipe.execute()
        return bool(removed)

    async def apply(self, declared: Sequence[Source], *, now: float) -> dict[str, list[str]]:
        """Make the file-origin sources exactly the declared ones; API sources are left alone
        (a file source takes over an API source of the same name)."""
        current = {s.name: s for s in await self.all()}
        report: dict[str, list[str]] = {"created": [], "updated": [], "removed": []}
        for source in declared:
            old = current.get(source.name)
            if old is not None and old.origin == "file":
                source = source.model_copy(update={"created_at": old.created_at})
                if old.stored() == source.stored():
                    continue
            report["updated" if old else "created"].append(source.name)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.k.sources, source.name, source.stored())
                if source.polled:  # new or changed: polled at once
                    pipe.zadd(self.k.sources_due, {source.name: now})
                else:
                    pipe.zrem(self.k.sources_due, source.name)
                await pipe.execute()
        wanted = {s.name for s in declared}
        for name, old in current.items():
            if old.origin == "file" and name not in wanted:
                report["removed"].append(name)
                await self.delete(name)
        return report

    # --- scheduling and leases -----------------------------------------------------------------

    async def due(self, now: float, limit: int) -> list[str]:
        names = await self.redis.zrangebyscore(self.k.sources_due, "-inf", now, start=0, num=limit)
        return [n.decode() for n in names]

    async def is_due(self, name: str, now: float) -> bool:
        score = await self.redis.zscore(self.k.sources_due, name)
        return score is not None and score <= now

    async def acquire(self, name: str, token: str, ttl_ms: int) -> bool:
        return bool(await self.redis.set(self.k.source_lease(name), token, nx=True, px=ttl_ms))

    async def renew(self, name: str, token: str, ttl_ms: int) -> bool:
        return bool(await self._renew(keys=[self.k.source_lease(name)], args=[token, ttl_ms]))

    async def release(self, name: str, token: str) -> None:
        await self._release(keys=[self.k.source_lease(name)], args=[token])

    async def holder(self, name: str) -> str | None:
        return _s(await self.redis.get(self.k.source_lease(name)))

    # --- cursor and status ---------------------------------------------------------------------

    async def cursor(self, name: str) -> Cursor | None:
        raw = await self.redis.get(self.k.source_cursor(name))
        return Cursor.model_validate_json(raw) if raw else None

    async def failures(self, name: str) -> int:
        return int(await self.redis.hget(self.k.source_status(name), "consecutive_failures") or 0)

    def _guarded(self, name: str, token: str) -> Guarded:
        w = Guarded()
        w.expect(self.k.source_lease(name), token)
        return w

    async def started(self, name: str, token: str, at: datetime, by: str) -> bool:
        w = self._guarded(name, token)
        status = self.k.source_status(name)
        w.do("HSET", status, "last_poll_at", at.isoformat(), "last_polled_by", by)
        w.do("HINCRBY", status, "polls", 1)
        return await self.cas(w)

    async def commit(
        self, name: str, token: str, cursor: Cursor, published: int, warnings: list[str]
    ) -> bool:
        """Keep the cursor of a page whose posts are published."""
        w = self._guarded(name, token)
        w.do("SET", self.k.source_cursor(name), cursor.model_dump_json(exclude_none=True))
        if published:
            w.do("HINCRBY", self.k.source_status(name), "items_ingested", published)
        if warnings:
            w.do("HSET", self.k.source_status(name), "last_warning", "; ".join(warnings)[:1_000])
        return await self.cas(w)

    async def succeeded(self, name: str, token: str, at: datetime, next_at: float) -> bool:
        w = self._guarded(name, token)
        status = self.k.source_status(name)
        w.do("HSET", status, "last_success_at", at.isoformat(), "consecutive_failures", 0)
        w.do("ZADD", self.k.sources_due, "XX", next_at, name)
        return await self.cas(w)

    async def failed(self, name: str, token: str, at: datetime, error: str, next_at: float) -> bool:
        w = self._guarded(name, token)
        status = self.k.source_status(name)
        w.do("HSET", status, "last_error", error, "last_error_at", at.isoformat())
        w.do("HINCRBY", status, "consecutive_failures", 1)
        entry = json.dumps({"at": at.isoformat(), "error": error})
        w.do("LPUSH", self.k.source_errors(name), entry)
        w.do("LTRIM", self.k.source_errors(name), 0, RECENT_ERRORS - 1)
        w.do("ZADD", self.k.sources_due, "XX", next_at, name)
        return await self.cas(w)

    async def pushed(self, name: str, at: datetime, published: int) -> None:
        """A webhook source's push: counted like a poll's success."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.k.source_status(name), "last_success_at", at.isoformat())
            pipe.hincrby(self.k.source_status(name), "items_ingested", published)
            await pipe.execute()

    async def status(self, name: str) -> dict[str, Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.k.source_status(name))
            pipe.lrange(self.k.source_errors(name), 0, RECENT_ERRORS - 1)
            pipe.zscore(self.k.sources_due, name)
            pipe.get(self.k.source_lease(name))
            raw, errors, due, lease = await pipe.execute()
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        counters = ("polls", "items_ingested", "consecutive_failures")
        out: dict[str, Any] = {c: int(fields.pop(c, 0)) for c in counters}
        out.update(
            {
                k: fields.get(k)
                for k in (
                    "last_poll_at",
                    "last_success_at",
                    "last_error",
                    "last_error_at",
                    "last_warning",
                    "last_polled_by",
                )
            }
        )
        out["next_poll_at"] = (
            datetime.fromtimestamp(due, UTC).isoformat() if due is not None else None
        )
        out["polling_now"] = _s(lease).rpartition("/")[0] if lease else None
        out["recent_errors"] = [json.loads(e) for e in errors]
        return out
