"""notify's timed work — rechecks when a mute ends, repeats, digests, and the safety net under
every decided notification — in one Redis sorted set.

Members are `kind|subscription id|ref`, scored by when they are due (Unix milliseconds). Any
notify replica may take due work: `claim` atomically pushes what it takes a lease into the
future, so no other replica takes it meanwhile, and a replica that dies with it only delays it
by the lease. `release` removes a member only if nobody rescheduled it since the claim.
The silences API wakes members early when a silence is expired (shared/silences.py).
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.keys import Keys


class DueKind(StrEnum):
    RECHECK = "recheck"  # a mute (silence, quiet hours) ended: tell what was held back
    REPEAT = "repeat"  # remind of an unacknowledged red alert
    DIGEST = "digest"  # a rate-limit window ended: send its overflow as one message
    OWED = "owed"  # a decided notification: due only if its sender died before finishing it
    ESCALATE = "escalate"  # an escalation policy's next step (in Keys.escalation_due)


@dataclass(frozen=True)
class DueItem:
    kind: DueKind
    subscription_id: str
    ref: str  # incident id, or a digest window's start

    @property
    def member(self) -> str:
        return f"{self.kind.value}|{self.subscription_id}|{self.ref}"

    @classmethod
    def parse(cls, member: str) -> "DueItem":
        kind, sub, ref = member.split("|", 2)
        return cls(DueKind(kind), sub, ref)


def score(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def from_score(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


# ARGV: now, lease, limit, grace for owed chains (they are due only that much later).
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[3])
local owed_by = tonumber(ARGV[1]) - tonumber(ARGV[4])
local out = {}
for i = 1, #due, 2 do
  local m = due[i]
  if string.sub(m, 1, 5) ~= 'owed|' or tonumber(due[i + 1]) <= owed_by then
    redis.call('ZADD', KEYS[1], ARGV[2], m)
    out[#out + 1] = m
  end
end
return out
"""

_RELEASE = """
for i = 1, #ARGV, 2 do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return 0
"""


class DueSet:
    def __init__(self, redis: Redis, keys: Keys, key: str | None = None) -> None:
        self.key = key or keys.due  # escalation keeps its steps in a set of their own
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)

    async def claim(
        self, now: datetime, lease_s: float, limit: int, *, owed_grace_s: float = 0.0
    ) -> tuple[list[DueItem], int]:
        """Take up to `limit` due items; returns them and the lease score they now hold.

        `owed` items are taken only `owed_grace_s` after they came due (services/notify
        leaves a chain just decided to the replica that decided it).
        """
        lease = score(now) + int(lease_s * 1000)
        grace = int(owed_grace_s * 1000)
        members = await self._claim(keys=[self.key], args=[score(now), lease, limit, grace])
        return [DueItem.parse(m.decode()) for m in members], lease

    async def release(self, pipe: Pipeline, items: list[DueItem], lease: int) -> None:
        if items:
            args: list[str | int] = []
            for item in items:
                args += [item.member, lease]
            await self._release(keys=[self.key], args=args, client=pipe)
