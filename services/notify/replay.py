"""Dead letters: list them, and replay one.

- A dead-lettered *delivery* (stream `deliveries`) is sent again to the URL that failed, with the
  usual retries; the attempts are recorded like any delivery, and a success closes the URL's
  circuit. If the subscription no longer has that URL, nothing is sent and the answer says so.
- A dead-lettered *stream entry* (`posts`, `commands`, `incident-events`) is published again to
  its stream, as it was, for its consumers to process.

A letter replayed successfully is marked so; replaying it again needs `force`. Two replays of one
letter never run at once.
"""

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from services.notify import records
from services.notify.circuit import CircuitStore
from services.notify.render import Notification
from services.notify.send import Sender, target_urls
from shared import keys
from shared.codec import restore_fields
from shared.links import link_secret
from shared.models import DeadLetter
from shared.settings import Settings
from shared.subscriptions import SubscriptionStore

SCAN_CHUNK = 500
LOCK_S = 300


class ReplayError(Exception):
    """The letter cannot be replayed (the reason is safe to show)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Letter:
    entry_id: str
    letter: DeadLetter
    replayed: dict[str, Any] | None

    def public(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            **self.letter.model_dump(mode="json"),
            "replayed": self.replayed,
        }


class DeadLetters:
    def __init__(self, redis: Redis, settings: Settings, sender: Sender | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.k = keys.Keys(settings.namespace)
        self.stream = self.k.stream(keys.DEADLETTER)
        self._sender = sender

    async def list(self, limit: int = 50, stream: str | None = None) -> list[Letter]:
        """Newest first."""
        out: list[Letter] = []
        async for letter in self._newest_first():
            if stream is None or letter.letter.stream == stream:
                out.append(letter)
                if len(out) >= limit:
                    break
        return out

    async def find(self, letter_id: str) -> Letter | None:
        """By the letter's id, or by its entry id in the deadletter stream."""
        async for letter in self._newest_first():
            if letter_id in (letter.letter.id, letter.entry_id):
                return letter
        return None

    async def _newest_first(self) -> AsyncIterator[Letter]:
        end = "+"
        while True:
            chunk = await self.redis.xrevrange(self.stream, max=end, count=SCAN_CHUNK)
            if not chunk:
                return
            ids = [entry_id.decode() for entry_id, _ in chunk]
            letters = [DeadLetter.model_validate_json(f[b"data"]) for _, f in chunk]
            marks = await self.redis.hmget(self.k.deadletter_replayed, [x.id for x in letters])
            for entry_id, letter, mark in zip(ids, letters, marks, strict=True):
                yield Letter(entry_id, letter, json.loads(mark) if mark else None)
            if len(chunk) < SCAN_CHUNK:
                return
            end = f"({ids[-1]}"

    async def replay(self, letter_id: str, *, force: bool = False) -> dict[str, Any]:
        found = await self.find(letter_id)
        if found is None:
            raise ReplayError(f"no dead letter {letter_id!r}", status=404)
        if found.replayed and not force:
            raise ReplayError(
                f"dead letter {letter_id!r} was already replayed at {found.replayed['at']}: "
                "use force to replay it again"
            )
        lock = self.k.deadletter_replaying(found.letter.id)
        if not await self.redis.set(lock, "1", nx=True, ex=LOCK_S):
            raise ReplayError(f"dead letter {letter_id!r} is being replayed right now")
        try:
            if found.letter.stream == keys.DELIVERIES:
                result = await self._resend(found.letter)
            elif found.letter.stream in keys.WORK_STREAMS:
                result = await self._republish(found.letter)
            else:
                raise ReplayError(f"entries of {found.letter.stream!r} cannot be replayed")
            if result["ok"]:
                mark = {"at": datetime.now(UTC).isoformat(), **result}
                await self.redis.hset(self.k.deadletter_replayed, found.letter.id, json.dumps(mark))
            return {"id": found.letter.id, **result}
        finally:
            await self.redis.delete(lock)

    async def _republish(self, letter: DeadLetter) -> dict[str, Any]:
        entry_id = await self.redis.xadd(
            self.k.stream(letter.stream), restore_fields(letter.fields)
        )
        return {"ok": True, "stream": letter.stream, "entry_id": entry_id.decode()}

    async def _resend(self, letter: DeadLetter) -> dict[str, Any]:
        extra = letter.extra
        sub = await SubscriptionStore(self.redis, self.k).get(str(extra.get("subscription_id")))
        if sub is None:
            raise ReplayError(f"subscription {extra.get('subscription_id')!r} no longer exists")
        urls = target_urls(sub)
        wanted = extra.get("url_hash")
        index = next((i for i, u in enumerate(urls) if records.url_hash(u) == wanted), None)
        if index is None:
            raise ReplayError(
                f"subscription {sub.name!r} no longer has the URL that failed ({extra.get('url')})"
            )
        n = Notification.model_validate_json(letter.fields["data"])
        if self._sender is None:
            self._sender = Sender(self.settings)
        if self._sender.link_secret is None:  # fresh links: the letter keeps none that work
            self._sender.link_secret = await link_secret(self.redis, self.settings)
        [result] = await self._sender.deliver(sub, n, indices=[index])
        async with self.redis.pipeline(transaction=True) as pipe:
            records.queue(
                pipe,
                self.k,
                self.settings.audit_maxlen,
                sub,
                n,
                result,
                urls[index],
                deadletter=False,  # the letter stays until a replay succeeds
            )
            await pipe.execute()
        await CircuitStore(self.redis, self.k).record(
            sub.id,
            index,
            ok=result.ok,
            url=result.url,
            error=result.error,
            threshold=self.settings.circuit_failures,
            open_s=self.settings.circuit_open_s,
        )
        return {
            "ok": result.ok,
            "subscription": sub.name,
            "url": result.url,
            "attempts": len(result.attempts),
            "error": result.error,
        }

    async def aclose(self) -> None:
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await self._sender.aclose()
