"""A circuit breaker per URL: a target that keeps failing is skipped for a while.

After `circuit_failures` failed deliveries in a row (each after all its retries), a URL's circuit
opens: for `circuit_open_s` its deliveries are not attempted but dead-lettered at once (replayable
with `redalert deadletter replay`), so a dead target does not hold up fan-out with its timeouts.
Then it is half-open: the next delivery is tried; success closes it, failure opens it again.
State lives in Redis so every notify replica, the API and the metrics see the same thing.
"""

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.keys import Keys
from shared.settings import Settings

State = Literal["closed", "open", "half_open"]


class Circuit(BaseModel):
    subscription_id: str
    index: int
    url: str  # masked
    failures: int = 0  # failed deliveries in a row
    open_until: datetime | None = None
    last_error: str | None = None

    def state(self, now: datetime) -> State:
        if self.open_until is None:
            return "closed"
        return "open" if now < self.open_until else "half_open"

    def public(self, now: datetime) -> dict[str, object]:
        return {**self.model_dump(mode="json"), "state": self.state(now)}


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
    """The circuit after one delivery (None: closed, nothing to remember)."""
    if ok:
        return None
    failures = (circuit.failures if circuit else 0) + 1
    opens = failures >= threshold
    return Circuit(
        subscription_id=subscription_id,
        index=index,
        url=url,
        failures=failures,
        open_until=now + timedelta(seconds=open_s) if opens else None,
        last_error=error,
    )


def _field(subscription_id: str, index: int) -> str:
    return f"{subscription_id}:{index}"


class CircuitStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def read(self, targets: list[tuple[str, int]]) -> dict[tuple[str, int], Circuit]:
        if not targets:
            return {}
        raw = await self.redis.hmget(self.keys.circuits, [_field(s, i) for s, i in targets])
        return {t: Circuit.model_validate_json(v) for t, v in zip(targets, raw, strict=True) if v}

    def update(
        self,
        pipe: Pipeline,
        old: Circuit | None,
        settings: Settings,
        *,
        subscription_id: str,
        index: int,
        url: str,
        ok: bool,
        error: str | None,
        now: datetime,
    ) -> None:
        """Queue the circuit's new state after one delivery, if it changed."""
        new = after_delivery(
            old,
            ok=ok,
            subscription_id=subscription_id,
            index=index,
            url=url,
            error=error,
            now=now,
            threshold=settings.circuit_failures,
            open_s=settings.circuit_open_s,
        )
        if new != old:
            self.write(pipe, subscription_id, index, new)

    def write(self, pipe: Pipeline, subscription_id: str, index: int, c: Circuit | None) -> None:
        if c is None:
            pipe.hdel(self.keys.circuits, _field(subscription_id, index))
        else:
            pipe.hset(self.keys.circuits, _field(subscription_id, index), c.model_dump_json())

    async def all(self) -> list[Circuit]:
        raw = await self.redis.hgetall(self.keys.circuits)
        return [Circuit.model_validate_json(v) for v in raw.values()]

    async def of(self, subscription_id: str, n_targets: int) -> list[Circuit]:
        found = await self.read([(subscription_id, i) for i in range(n_targets)])
        return [found[k] for k in sorted(found)]

    async def forget(self, subscription_id: str) -> None:
        fields = [f for f in await self.redis.hkeys(self.keys.circuits)]
        mine = [f for f in fields if f.decode().rsplit(":", 1)[0] == subscription_id]
        if mine:
            await self.redis.hdel(self.keys.circuits, *mine)
