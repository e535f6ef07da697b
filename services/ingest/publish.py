"""Publishing to the work streams. A post is published once: dedup and XADD are one atomic step."""

import asyncio
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from shared import keys, metrics
from shared.codec import encode
from shared.models import IncidentCommand, Post
from shared.redis import check_replicated, queue_wait, replicas_wanted
from shared.settings import Settings

# ARGV: ttl, stream, then (seen key, data) pairs. Returns 1/0 per post: published or duplicate.
_PUBLISH_ONCE = """
local out = {}
local ttl, stream = ARGV[1], ARGV[2]
for i = 3, #ARGV, 2 do
  if redis.call('SET', ARGV[i], '1', 'NX', 'EX', ttl) then
    redis.call('XADD', stream, '*', 'data', ARGV[i + 1])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""


# A post as published: its dedup identity (source:id), its id, its JSON.
Entry = tuple[str, str, str | bytes]
Arg = str | bytes | int

# Group commit: one publishing call is out at a time per process; the posts of requests that
# arrive meanwhile wait and go together in the next call. Under load each call carries many
# requests' posts: a Redis write (and wake-up) per group, not per request, which on a busy
# machine cost more than all the rest of a small request. A second call goes out beside the
# first only for a large group (batches): Redis then always has the next one to run.
IN_FLIGHT = 2
SECOND_CALL_POSTS = 100  # single posts from a few dozen clients never make one: they group
GROUP_POSTS = 1_000  # a bigger group waits for the next call: Redis runs one script at a time


class Publisher:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.k = keys.Keys(settings.namespace)
        self._publish_once = redis.register_script(_PUBLISH_ONCE)
        self._in_flight = 0
        self._waiting: list[tuple[list[Arg], asyncio.Future[list[int]]]] = []
        self._groups: set[asyncio.Task[None]] = set()

    async def posts(self, posts: Sequence[Post]) -> tuple[list[str], list[str]]:
        """Publish new posts; return (accepted ids, duplicate ids)."""
        return await self.entries([(p.key, p.id, encode(p)["data"]) for p in posts])

    async def entries(self, entries: Sequence[Entry]) -> tuple[list[str], list[str]]:
        """Publish posts already encoded; return (accepted ids, duplicate ids)."""
        if not entries:
            return [], []
        pairs: list[Arg] = []
        for key, _, data in entries:
            pairs += [self.k.seen_post(key), data]
        flags = await self._group_commit(pairs)
        accepted = [e[1] for e, f in zip(entries, flags, strict=True) if f]
        duplicates = [e[1] for e, f in zip(entries, flags, strict=True) if not f]
        metrics.posts_received(len(accepted), len(duplicates))
        return accepted, duplicates

    async def _group_commit(self, pairs: list[Arg]) -> list[int]:
        """The flags of these (seen key, data) pairs, published alone when a call is free, else
        with the other requests' posts that wait for one."""
        if not self._in_flight and not self._waiting:
            self._in_flight += 1
            try:
                return await self._call(pairs)
            finally:
                self._in_flight -= 1
                self._next_group()
        waiting: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._waiting.append((pairs, waiting))
        self._next_group()
        return await waiting

    def _next_group(self) -> None:
        if not self._waiting or self._in_flight >= IN_FLIGHT:
            return
        if self._in_flight and sum(len(p) for p, _ in self._waiting) < SECOND_CALL_POSTS * 2:
            return  # the call out now takes them when it ends
        size = taken = 0
        while taken < len(self._waiting) and (not taken or size < GROUP_POSTS * 2):
            size += len(self._waiting[taken][0])
            taken += 1
        group, self._waiting = self._waiting[:taken], self._waiting[taken:]
        self._in_flight += 1
        task = asyncio.create_task(self._publish_group(group))
        self._groups.add(task)
        task.add_done_callback(self._groups.discard)

    async def _publish_group(
        self, group: list[tuple[list[Arg], asyncio.Future[list[int]]]]
    ) -> None:
        try:
            flags = await self._call([arg for pairs, _ in group for arg in pairs])
        except BaseException as e:  # each request answers it as it would its own (503…)
            for _, waiting in group:
                if not waiting.done():
                    waiting.set_exception(e)
            if not isinstance(e, Exception):
                raise
        else:
            at = 0
            for pairs, waiting in group:
                n = len(pairs) // 2
                if not waiting.done():  # a request that went away: its posts are published
                    waiting.set_result(flags[at : at + n])
                at += n
        finally:
            self._in_flight -= 1
            self._next_group()

    async def _call(self, pairs: list[Arg]) -> list[int]:
        args: list[Arg] = [self.settings.dedup_ttl_s, self.k.stream(keys.POSTS), *pairs]
        try:
            return await self._publish(args)
        except NoScriptError:  # a restarted or failed-over Redis: nothing ran; load, once more
            await self.redis.script_load(_PUBLISH_ONCE)
            return await self._publish(args)

    async def _publish(self, args: list[Arg]) -> list[int]:
        """One EVALSHA for the whole batch. Not redis-py's Script in a pipeline: that asks
        SCRIPT EXISTS first, a second round trip on every request."""
        sha = self._publish_once.sha
        if not replicas_wanted(self.redis):
            return await self.redis.evalsha(sha, 0, *args)  # type: ignore[no-any-return]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.evalsha(sha, 0, *args)
            wanted = queue_wait(pipe, self.redis)  # same connection: WAIT covers the XADDs
            flags, acked = await pipe.execute()
        check_replicated(acked, wanted)
        return flags  # type: ignore[no-any-return]

    async def command(self, cmd: IncidentCommand) -> str:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self.k.stream(keys.COMMANDS), encode(cmd))
            wanted = queue_wait(pipe, self.redis)
            entry_id, *acked = await pipe.execute()
        check_replicated(acked[0] if acked else 0, wanted)
        return entry_id.decode()
