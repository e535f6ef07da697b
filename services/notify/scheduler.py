"""Who sends what: chains of owed messages, their short renewed leases, and fast takeover.

Everything one subscription is owed about one incident is a **chain**: the event ids in its
outbox list (`Keys.outbox`), oldest first, and one `owed` due item (shared/due.py) whose score
is the chain's lease. Deciding a message appends it to the outbox and adds the due item, due at
once, if it is not there (in the decision's own compare-and-apply). Whoever claims the due item
holds the chain: it sends the head, records it, pops it, and goes on until the outbox is empty;
then it removes the due item — only if it still holds the lease. So:

- one sender per chain at a time: a `[RESOLVED]` never overtakes its `[RED ALERT]`, across
  retries, takeovers and restarts;
- the holder renews its leases every `send_lease_s / 3` while it sends (`renew`); a replica that
  dies stops renewing, and its chains come due `send_lease_s` later for any replica's poll;
- the only message a takeover can send twice is the head that was in flight at the crash.
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.due import DueItem, DueKind
from shared.keys import Keys

log = logging.getLogger("redalert.notify")

# KEYS[1]: due. ARGV: now ms, lease ms, then (member, outbox key) pairs.
# For each pair: the outbox length if claimed (it was due), else -1.
_CLAIM_CHAINS = """
local out = {}
for i = 3, #ARGV, 2 do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s and tonumber(s) <= tonumber(ARGV[1]) then
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i])
    out[#out + 1] = redis.call('LLEN', ARGV[i + 1])
  else
    out[#out + 1] = -1
  end
end
return out
"""

# KEYS[1]: due. ARGV: new lease ms, then (member, held lease ms) pairs. Returns the members lost.
_RENEW = """
local lost = {}
for i = 2, #ARGV, 2 do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"""

# KEYS: due, outbox, notification, its sent set. ARGV: event id, done JSON, ttl s, member, lease.
# Pops the finished head, marks it done; removes the due item when the chain is empty and still
# ours. Returns what is left in the outbox.
_FINISH = """
if redis.call('LINDEX', KEYS[2], 0) == ARGV[1] then
  redis.call('LPOP', KEYS[2])
else
  redis.call('LREM', KEYS[2], 1, ARGV[1])
end
if ARGV[2] ~= '' then redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[3]) end
redis.call('DEL', KEYS[4])
local left = redis.call('LLEN', KEYS[2])
if left == 0 and redis.call('ZSCORE', KEYS[1], ARGV[4]) == ARGV[5] then
  redis.call('ZREM', KEYS[1], ARGV[4])
end
return left
"""

# KEYS: due, outbox. ARGV: member, lease, when ms. Hands the chain back: due at `when`.
_POSTPONE = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then
  if redis.call('LLEN', KEYS[2]) == 0 then
    redis.call('ZREM', KEYS[1], ARGV[1])
  else
    redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  end
end
return 0
"""


def chain_of(incident_id: str) -> str:
    """The chain a message belongs to: its incident (a digest about several has its own)."""
    return incident_id or "digest"


def chain_item(subscription_id: str, incident_id: str) -> DueItem:
    return DueItem(DueKind.OWED, subscription_id, chain_of(incident_id))


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Held:
    item: DueItem
    lease: int  # the due item's score while we hold it
    lost: bool = False


class Leases:
    """The chains this replica holds, renewed together until they are finished or lost."""

    def __init__(self, redis: Redis, keys: Keys, lease_s: float) -> None:
        self.k = keys
        self.lease_ms = int(lease_s * 1000)
        self.held: dict[str, Held] = {}
        self._claim = redis.register_script(_CLAIM_CHAINS)
        self._renew = redis.register_script(_RENEW)
        self._postpone = redis.register_script(_POSTPONE)

    def outbox(self, item: DueItem) -> str:
        return self.k.outbox(item.subscription_id, item.ref)

    async def claim(self, items: list[DueItem]) -> dict[DueItem, tuple[Held, int]]:
        """Take the chains that are due (just decided, or abandoned); each with its length."""
        if not items:
            return {}
        lease = now_ms() + self.lease_ms
        args: list[str | int] = [now_ms(), lease]
        for item in items:
            args += [item.member, self.outbox(item)]
        lengths = await self._claim(keys=[self.k.due], args=args)
        out = {}
        for item, length in zip(items, lengths, strict=True):
            if int(length) >= 0:
                out[item] = (self.hold(item, lease), int(length))
        return out

    def adopt(self, item: DueItem, lease: int) -> bool:
        """A chain this replica is already sending came due (its renewal ran late, on a busy
        machine) and this replica claimed it again: keep sending it under the new lease instead
        of starting it twice. A renewal that saw the new lease before this claim was known here
        marked it lost; it is ours again."""
        held = self.held.get(item.member)
        if held is None:
            return False
        held.lease, held.lost = lease, False
        return True

    def hold(self, item: DueItem, lease: int) -> Held:
        held = self.held[item.member] = Held(item, lease)
        return held

    def drop(self, held: Held) -> None:
        if self.held.get(held.item.member) is held:
            del self.held[held.item.member]

    async def renew(self) -> None:
        """Push every held lease forward; mark the ones another replica took as lost."""
        if not self.held:
            return
        lease = now_ms() + self.lease_ms
        held = [(h, h.lease) for h in self.held.values()]
        args: list[str | int] = [lease]
        for h, sent in held:
            args += [h.item.member, sent]
        lost = {m.decode() for m in await self._renew(keys=[self.k.due], args=args)}
        for h, sent in held:
            if h.lease != sent:
                continue  # adopted under a newer lease meanwhile: that one stands
            if h.item.member in lost:
                h.lost = True  # its sender stops after the send in flight (chains.py says so)
            else:
                h.lease = lease

    async def renew_forever(self, stop: asyncio.Event) -> None:
        every = self.lease_ms / 3000
        while not stop.is_set():
            try:
                await self.renew()
            except Exception:
                log.exception("renewing send leases failed; will try again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)

    async def finish(
        self, pipe: Pipeline, *, held: Held, event_id: str, done_json: str = "", ttl_s: int = 0
    ) -> None:
        """Queue on a transaction: the head is finished (its records go in the same one)."""
        item = held.item
        sub_id = item.subscription_id
        keys = [
            self.k.due,
            self.outbox(item),
            self.k.notification(event_id, sub_id),
            self.k.notification_sent(event_id, sub_id),
        ]
        # EVAL, not a registered script: redis-py precedes every pipeline holding a script with
        # a SCRIPT EXISTS round trip, and this one commits every send.
        pipe.eval(_FINISH, len(keys), *keys, event_id, done_json, ttl_s, item.member, held.lease)

    async def postpone(self, held: Held, delay_s: float) -> None:
        """Give the chain back, due again after `delay_s` (its lane is full)."""
        await self._postpone(
            keys=[self.k.due, self.outbox(held.item)],
            args=[held.item.member, held.lease, now_ms() + int(delay_s * 1000)],
        )
