"""Compare-and-apply: a list of Redis commands that runs only if some keys still hold what we read.

This is how classify replicas share incidents without locks: read the incident and its version,
compute the transition in Python (the pure core), then apply every write of the transition —
the new snapshot, its events, the stream acks — in one Lua call guarded by the version read.
If another replica got there first, nothing is written and the caller recomputes.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.redis import ReplicatedPipeline, replicas_wanted

log = logging.getLogger("redalert.atomic")

# ARGV: n_guards, then (key, expected) pairs ('' = absent), then commands as (argc, args...).
_SCRIPT = """
local i = 2
for g = 1, tonumber(ARGV[1]) do
  local v = redis.call('GET', ARGV[i])
  if v == false then v = '' end
  if v ~= ARGV[i + 1] then return g end
  i = i + 2
end
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 0
"""


@dataclass
class Guarded:
    """Writes to apply together, provided every guard still holds."""

    guards: list[tuple[str, str]] = field(default_factory=list)
    commands: list[Sequence[Any]] = field(default_factory=list)
    # Run once the write is applied (never if a guard failed): metrics count what was written.
    on_applied: list[Callable[[], None]] = field(default_factory=list)

    def expect(self, key: str, value: str | int | None) -> None:
        self.guards.append((key, "" if value is None else str(value)))

    def do(self, *command: Any) -> None:
        self.commands.append(command)

    def then(self, callback: Callable[[], None]) -> None:
        self.on_applied.append(callback)

    def applied(self) -> None:
        for callback in self.on_applied:
            callback()

    def argv(self) -> list[Any]:
        args: list[Any] = [len(self.guards)]
        for key, value in self.guards:
            args += [key, value]
        for cmd in self.commands:
            args.append(len(cmd))
            args.extend(cmd)
        return args


class CompareAndApply:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._script = redis.register_script(_SCRIPT)

    async def __call__(self, write: Guarded) -> bool:
        """True if applied; False if a guard failed (nothing was written)."""
        if replicas_wanted(self.redis):
            # WAIT on the same connection as the write: it survives the loss of the primary.
            async with ReplicatedPipeline(self.redis, transaction=False) as pipe:
                await self._script(keys=[], args=write.argv(), client=pipe)
                (result,) = await pipe.execute()
            ok = result == 0
            if ok and pipe.shortfall is not None:
                log.warning("%s", pipe.shortfall)
        else:
            ok = await self._script(keys=[], args=write.argv()) == 0
        if ok:
            write.applied()
        return ok

    async def queue(self, pipe: Pipeline, write: Guarded) -> None:
        """Queue on a pipeline; its result is 0 when applied."""
        await self._script(keys=[], args=write.argv(), client=pipe)
