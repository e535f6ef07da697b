"""Who owns incident state: one classify replica at a time, through a lease in Redis.

Consumer groups hand entries to whichever replica asks, so two replicas used to apply one
thread's posts out of order and fight over each incident with compare-and-apply retries. Now
one replica — the owner — holds a lease (a key with a random token and a TTL, renewed while it
lives), reads `posts` and `commands` in stream order and is the only writer of incidents; the
others stand by and take over when the lease is released (a clean stop hands off at once) or
expires (a crash: after the lease's TTL).

The token also fences every write: the owner's batch write runs only while the lease key still
holds its token (see `shared.atomic.Guarded`), so an owner that paused past its lease (a long GC,
a frozen VM) and wakes up writes nothing, and the new owner resumes from the entries it left
pending. This is the single-partition form of keyed ownership (Kafka Streams, Akka sharding):
one partition, one owner, every key in it.
"""

import asyncio
import contextlib
import logging
import secrets

from redis.asyncio import Redis

log = logging.getLogger("redalert.classify")

# Renew only if it is still ours; release only if it is still ours.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseLost(Exception):
    """The lease went to another replica (or expired): stop writing, leave the rest pending."""


class Lease:
    def __init__(self, redis: Redis, key: str, ttl_s: float) -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = max(100, int(ttl_s * 1000))
        self.token = secrets.token_hex(12)
        self.held = False
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    @property
    def renew_every_s(self) -> float:
        return self.ttl_ms / 3000

    async def try_acquire(self) -> bool:
        self.held = bool(await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))
        return self.held

    async def renew(self) -> bool:
        self.held = bool(await self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))
        return self.held

    async def release(self) -> None:
        """Hand off: the next replica to ask gets it at once."""
        if self.held:
            self.held = False
            await self._release(keys=[self.key], args=[self.token])

    async def keep(self, stop: asyncio.Event, lost: asyncio.Event) -> None:
        """Renew until `stop`; set `lost` (and return) if the lease could not be renewed."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.renew_every_s)
            if stop.is_set():
                return
            try:
                if await self.renew():
                    continue
                log.warning("classify: the ownership lease went to another replica")
            except Exception:
                log.exception("classify: could not renew the ownership lease")
                continue  # a blip: the write fence still protects; try again before it expires
            lost.set()
            return
