"""Publishing to the work streams. A post is published once: dedup and XADD are one atomic step."""

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


class Publisher:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.k = keys.Keys(settings.namespace)
        self._publish_once = redis.register_script(_PUBLISH_ONCE)

    async def posts(self, posts: Sequence[Post]) -> tuple[list[str], list[str]]:
        """Publish new posts; return (accepted ids, duplicate ids)."""
        if not posts:
            return [], []
        args: list[str | int] = [self.settings.dedup_ttl_s, self.k.stream(keys.POSTS)]
        for post in posts:
            args += [self.k.seen_post(post.key), encode(post)["data"]]
        try:
            flags = await self._publish(args)
        except NoScriptError:  # a restarted or failed-over Redis: nothing ran; load, once more
            await self.redis.script_load(_PUBLISH_ONCE)
            flags = await self._publish(args)
        accepted = [p.id for p, f in zip(posts, flags, strict=True) if f]
        duplicates = [p.id for p, f in zip(posts, flags, strict=True) if not f]
        metrics.posts_received(len(accepted), len(duplicates))
        return accepted, duplicates

    async def _publish(self, args: list[str | int]) -> list[int]:
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
