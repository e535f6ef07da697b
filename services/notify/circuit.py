"""A circuit breaker per URL: a target that keeps failing is skipped for a while.

After `circuit_failures` failed deliveries in a row (each after all its retries), a URL's circuit
opens: for `circuit_open_s` its deliveries are not attempted but dead-lettered at once (replayable
with `redalert deadletter replay`), so a dead target does not hold up its lane with timeouts.
Then it is half-open: exactly one delivery is let through as a probe (the others are still
skipped); its success closes the circuit, its failure opens it again.

Every outcome is counted atomically in Redis (one Lua call reads, counts and writes), so
concurrent deliveries — of one batch, of one lane, of several replicas — each count: a target
answering 500 to everything opens after N failures whatever the concurrency. State lives in Redis
so every notify replica, the API and `/metrics` see the same thing (`states()` for metrics).
"""

import asyncio
import time
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel
from redis.asyncio import Redis

from shared.keys import Keys

State = Literal["closed", "open", "half_open"]

# KEYS[1]: the circuits hash. ARGV: field, ok (1/0), now ms, threshold, open ms, url, error,
# subscription id, index. Returns 'closed' after a success, else the circuit's JSON.
_RECORD = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '1' then
  if raw then redis.call('HDEL', KEYS[1], ARGV[1]) end
  return 'closed'
end
local now = tonumber(ARGV[3])
local c = {subscription_id = ARGV[8], index = tonumber(ARGV[9]), failures = 0}
if raw then c = cjson.decode(raw) end
c.failures = (tonumber(c.failures) or 0) + 1
c.url = ARGV[6]
c.last_error = ARGV[7]
c.probe_until_ms = nil
if c.failures >= tonumber(ARGV[4]) then
  c.open_until_ms = now + tonumber(ARGV[5])
end
local encoded = cjson.encode(c)
redis.call('HSET', KEYS[1], ARGV[1], encoded)
return encoded
"""

# KEYS[1]: the circuits hash. ARGV: field, now ms, probe ms.
# Returns 'closed' (send), 'probe' (send: the one half-open probe) or the circuit JSON (skip).
_ADMIT = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 'closed' end
local c = cjson.decode(raw)
local now = tonumber(ARGV[2])
if not c.open_until_ms or c.open_until_ms == cjson.null then return 'closed' end
if now < c.open_until_ms then return raw end
if c.probe_until_ms and c.probe_until_ms ~= cjson.null and now < c.probe_until_ms then
  return raw
end
c.probe_until_ms = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(c))
return 'probe'
"""


class Circuit(BaseModel):
    subscription_id: str
    index: int
    url: str = ""  # masked
    failures: int = 0  # failed deliveries in a row
    open_until_ms: int | None = None
    probe_until_ms: int | None = None  # a half-open probe is in flight until then
    last_error: str | None = None

    @property
    def open_until(self) -> datetime | None:
        if self.open_until_ms is None:
            return None
        return datetime.fromtimestamp(self.open_until_ms / 1000, UTC)

    def state(self, now: datetime) -> State:
        if self.open_until_ms is None:
            return "closed"
        return "open" if _ms(now) < self.open_until_ms else "half_open"

    def public(self, now: datetime) -> dict[str, object]:
        until = self.open_until
        return {
            "subscription_id": self.subscription_id,
            "index": self.index,
            "url": self.url,
            "failures": self.failures,
            "open_until": until.isoformat() if until else None,
            "last_error": self.last_error,
            "state": self.state(now),
        }

    def why_skipped(self) -> str:
        until = f"{self.open_until:%H:%M:%S} UTC" if self.open_until else "a probe ends"
        return (
            f"circuit open until {until} after {self.failures} failed deliveries; "
            f"last: {self.last_error}"
        )


def after_delivery(
    circuit: Circuit | None,
    *,
    ok: bool,
    subscription_id: str,
    index: int,
    url: str,
    error: str | None,
    now: datetime,
    threshold: int,
    open_s: float,
) -> Circuit | None:
    """The circuit after one delivery (None: closed, nothing to remember).

    The reference of the transition `_RECORD` applies atomically in Redis (tests check both).
    """
    if ok:
        return None
    failures = (circuit.failures if circuit else 0) + 1
    opens = failures >= threshold
    return Circuit(
        subscription_id=subscription_id,
        index=index,
        url=url,
        failures=failures,
        open_until_ms=_ms(now) + int(open_s * 1000) if opens else None,
        last_error=error,
    )


def _field(subscription_id: str, index: int) -> str:
    return f"{subscription_id}:{index}"


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class CircuitStore:
    def __init__(self, redis: Redis, keys: Keys, cache_s: float = 1.0) -> None:
        self.redis = redis
        self.keys = keys
        self._record = redis.register_script(_RECORD)
        self._admit = redis.register_script(_ADMIT)
        # Every circuit that is not plainly closed, as last read: senders consult this, so a
        # healthy URL costs no Redis call; another replica's change is seen within `cache_s`.
        self.cache_s = cache_s
        self._known: dict[str, Circuit] = {}
        self._known_at = -1e9
        self._refreshing: asyncio.Lock | None = None

    async def known(self, subscription_id: str, index: int) -> Circuit | None:
        """This URL's circuit as recently read (None: closed, no failures counted)."""
        if time.monotonic() - self._known_at > self.cache_s:
            if self._refreshing is None:
                self._refreshing = asyncio.Lock()
            async with self._refreshing:
                if time.monotonic() - self._known_at > self.cache_s:
                    raw = await self.redis.hgetall(self.keys.circuits)
                    self._known = {
                        f.decode(): Circuit.model_validate_json(v) for f, v in raw.items()
                    }
                    self._known_at = time.monotonic()
        return self._known.get(_field(subscription_id, index))

    async def admit(
        self, subscription_id: str, index: int, probe_s: float
    ) -> tuple[bool, Circuit | None]:
        """May a delivery to this URL be tried now? (False: its circuit is open; here is why.)"""
        now = int(time.time() * 1000)
        answer = await self._admit(
            keys=[self.keys.circuits],
            args=[_field(subscription_id, index), now, int(probe_s * 1000)],
        )
        if answer in (b"closed", b"probe"):
            return True, None
        return False, Circuit.model_validate_json(answer)

    async def record(
        self,
        subscription_id: str,
        index: int,
        *,
        ok: bool,
        url: str,
        error: str | None,
        threshold: int,
        open_s: float,
    ) -> State:
        """Count one delivery's outcome, atomically; the circuit's state after it."""
        now = int(time.time() * 1000)
        state = await self._record(
            keys=[self.keys.circuits],
            args=[
                _field(subscription_id, index),
                1 if ok else 0,
                now,
                threshold,
                int(open_s * 1000),
                url,
                error or "",
                subscription_id,
                index,
            ],
        )
        field = _field(subscription_id, index)
        if ok:
            self._known.pop(field, None)
            return "closed"
        circuit = Circuit.model_validate_json(state)
        self._known[field] = circuit
        return "open" if circuit.open_until_ms is not None else "closed"

    async def read(self, targets: list[tuple[str, int]]) -> dict[tuple[str, int], Circuit]:
        if not targets:
            return {}
        raw = await self.redis.hmget(self.keys.circuits, [_field(s, i) for s, i in targets])
        return {t: Circuit.model_validate_json(v) for t, v in zip(targets, raw, strict=True) if v}

    async def all(self) -> list[Circuit]:
        raw = await self.redis.hgetall(self.keys.circuits)
        return [Circuit.model_validate_json(v) for v in raw.values()]

    async def states(self) -> list[tuple[Circuit, State]]:
        """Every circuit that is not closed, with its state: what `/metrics` shows."""
        now = datetime.now(UTC)
        out = [(c, c.state(now)) for c in await self.all()]
        shown = [(c, s) for c, s in out if s != "closed"]
        return sorted(shown, key=lambda x: (x[0].subscription_id, x[0].index))

    async def of(self, subscription_id: str, n_targets: int) -> list[Circuit]:
        found = await self.read([(subscription_id, i) for i in range(n_targets)])
        return [found[k] for k in sorted(found)]

    async def forget(self, subscription_id: str) -> None:
        fields = [f for f in await self.redis.hkeys(self.keys.circuits)]
        mine = [f for f in fields if f.decode().rsplit(":", 1)[0] == subscription_id]
        if mine:
            await self.redis.hdel(self.keys.circuits, *mine)
