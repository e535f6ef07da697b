"""Reading a work stream through a consumer group, with the guarantees DESIGN.md asks for.

FastStream runs two subscribers per stream: one reads new entries in batches (XREADGROUP), one
claims entries another consumer left pending for too long (XAUTOCLAIM). Both hand the raw entries
to the service's handler. Acknowledgement is manual: a handler acks an entry in the same atomic
write as its effect, so an entry is acked exactly when its effect is durable.

What the runtime adds around a handler:
- an entry that cannot be decoded, or that was delivered ``max_deliveries`` times, goes to the
  ``deadletter`` stream with its error and is acked: never dropped, never retried forever;
- a handler that raises leaves the entries pending (to be reclaimed) and its error is kept, so the
  dead letter says why;
- a consumer group that disappeared (Redis restarted without persistence) is recreated and the
  subscriber restarted, instead of the service silently stopping.
"""

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from faststream import AckPolicy, Context
from faststream.message import gen_cor_id
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.message import RedisBatchStreamMessage
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared import keys, metrics
from shared.codec import Fields, printable_fields
from shared.models import DeadLetter
from shared.settings import Settings

log = logging.getLogger("redalert.consumer")

ERROR_TTL_S = 86_400


@dataclass(slots=True)
class Entry:
    id: bytes
    fields: Fields
    deliveries: int = 1


@dataclass
class Batch:
    """Entries read together, and what the handler decided about each one."""

    stream: str  # full stream name
    group: str
    entries: list[Entry]
    reclaimed: bool = False
    dead: list[tuple[Entry, str]] = field(default_factory=list)
    failed: list[tuple[Entry, str]] = field(default_factory=list)

    def xack(self, entries: Sequence[Entry]) -> list[Any]:
        """The XACK command for entries, to put in the handler's own atomic write."""
        return ["XACK", self.stream, self.group, *(e.id for e in entries)]

    def deadletter(self, entry: Entry, error: str) -> None:
        """This entry can never succeed: dead-letter it now (the runtime acks it)."""
        self.dead.append((entry, error))

    def fail(self, entry: Entry, error: str) -> None:
        """This entry failed this time: leave it pending, to be retried after reclaim."""
        self.failed.append((entry, error))


Handler = Callable[[Batch], Awaitable[None]]


async def _raw_parser(raw: Any, _original: Any) -> RedisBatchStreamMessage:
    # FastStream's own parser JSON-encodes the batch and fails the whole batch on one non-UTF-8
    # entry; handlers decode entries themselves, one at a time.
    return RedisBatchStreamMessage(
        raw_message=raw,
        body=b"",
        headers={},
        path={},
        reply_to="",
        content_type=None,
        message_id=gen_cor_id(),
        correlation_id=gen_cor_id(),
        consumer=None,
        group=None,
    )


async def _raw_decoder(_msg: Any, _original: Any) -> None:
    return None


class StreamConsumer:
    """One work stream, one consumer group, one handler."""

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        stream: str,
        handler: Handler,
        *,
        group: str | None = None,
        consumer: str | None = None,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = keys.Keys(settings.namespace)
        self.short_name = stream
        self.stream = self.keys.stream(stream)
        self.group = group or keys.GROUPS[stream]
        self.consumer = consumer or settings.consumer_name
        self.handler = handler
        self._errors_key = f"{self.stream}:errors:{self.group}"
        self._subscribers: list[Any] = []

    def register(self, broker: RedisBroker) -> None:
        common: dict[str, Any] = {
            "parser": _raw_parser,
            "decoder": _raw_decoder,
            "ack_policy": AckPolicy.MANUAL,
        }
        reader = broker.subscriber(
            stream=StreamSub(
                self.stream,
                group=self.group,
                consumer=self.consumer,
                batch=True,
                max_records=self.settings.batch_size,
                polling_interval=self.settings.block_ms,
            ),
            **common,
        )
        reclaimer = broker.subscriber(
            stream=StreamSub(
                self.stream,
                group=self.group,
                consumer=self.consumer,
                batch=True,
                min_idle_time=self.settings.reclaim_idle_ms,
                polling_interval=max(self.settings.block_ms, 250),
            ),
            **common,
        )

        async def on_new(msg: RedisBatchStreamMessage = Context("message")) -> None:
            await self.process(_entries(msg), reclaimed=False)

        async def on_reclaimed(msg: RedisBatchStreamMessage = Context("message")) -> None:
            await self.process(_entries(msg), reclaimed=True)

        reader(on_new)
        reclaimer(on_reclaimed)
        self._subscribers = [reader, reclaimer]

    async def ensure_group(self) -> None:
        await ensure_group(self.redis, self.stream, self.group)

    async def process(self, entries: list[Entry], *, reclaimed: bool) -> None:
        batch = Batch(self.stream, self.group, [], reclaimed=reclaimed)
        if reclaimed:
            entries = await self._with_delivery_counts(entries)
            for entry in entries:
                if entry.fields is None:  # deleted or trimmed while pending
                    continue
                if entry.deliveries > self.settings.max_deliveries:
                    error = await self.redis.hget(self._errors_key, entry.id)
                    reason = error.decode() if error else "no error recorded"
                    batch.deadletter(
                        entry, f"gave up after {entry.deliveries - 1} deliveries: {reason}"
                    )
                else:
                    batch.entries.append(entry)
            gone = [e for e in entries if e.fields is None]
            if gone:
                await self.redis.xack(self.stream, self.group, *(e.id for e in gone))
        else:
            batch.entries = entries
        if batch.entries:
            try:
                await self.handler(batch)
            except Exception as exc:
                log.exception(
                    "%s: handler failed on %d entries; they stay pending and will be retried",
                    self.short_name,
                    len(batch.entries),
                )
                error = _describe(exc)
                batch.failed.extend((e, error) for e in batch.entries if e not in _settled(batch))
        await self._settle(batch)

    async def _with_delivery_counts(self, entries: list[Entry]) -> list[Entry]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for e in entries:
                pipe.xpending_range(self.stream, self.group, min=e.id, max=e.id, count=1)
            pending = await pipe.execute()
        for e, p in zip(entries, pending, strict=True):
            e.deliveries = int(p[0]["times_delivered"]) if p else 1
        return entries

    async def _settle(self, batch: Batch) -> None:
        if not batch.dead and not batch.failed:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            for entry, error in batch.dead:
                letter = DeadLetter(
                    stream=self.short_name,
                    group=self.group,
                    entry_id=entry.id.decode(),
                    fields=printable_fields(entry.fields),
                    error=error,
                    attempts=entry.deliveries,
                )
                pipe.xadd(self.keys.stream(keys.DEADLETTER), {"data": letter.model_dump_json()})
                pipe.hdel(self._errors_key, entry.id)
                log.error(
                    "%s entry %s dead-lettered: %s", self.short_name, entry.id.decode(), error
                )
            if batch.dead:
                pipe.xack(self.stream, self.group, *(e.id for e, _ in batch.dead))
                metrics.dead_lettered(self.short_name, len(batch.dead))
            for entry, error in batch.failed:
                pipe.hset(self._errors_key, entry.id, error)
            if batch.failed:
                pipe.expire(self._errors_key, ERROR_TTL_S)
            await pipe.execute()

    async def leave(self) -> None:
        """On a clean stop: leave the group, unless entries are still pending under our name
        (then the consumer stays, for a live replica to claim them and remove it)."""
        await remove_consumer_if_idle(self.redis, self.stream, self.group, self.consumer)

    async def forget_dead_consumers(self) -> list[str]:
        """Remove the consumers of processes that are gone: nothing pending any more (a live
        replica claimed it) and idle far longer than a live consumer ever is between reads."""
        idle_ms = max(2 * self.settings.reclaim_idle_ms, 100 * self.settings.block_ms)
        removed = []
        try:
            consumers = await self.redis.xinfo_consumers(self.stream, self.group)
        except ResponseError:
            return removed  # no group (yet): supervise recreates it
        for c in consumers:
            name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
            if name == self.consumer or c["pending"] or c["idle"] < idle_ms:
                continue
            if await remove_consumer_if_idle(self.redis, self.stream, self.group, name):
                log.info("%s: removed consumer %s (gone, nothing pending)", self.short_name, name)
                removed.append(name)
        return removed

    async def supervise(self, stop: asyncio.Event, every_s: float = 2.0) -> None:
        """Keep the consumer healthy: restart subscribers that FastStream stopped on NOGROUP
        (recreating the group), trim what every group has acknowledged, and remove consumers
        of dead processes once their pending entries were claimed."""
        loop = asyncio.get_running_loop()
        next_trim = loop.time() + self.settings.trim_interval_s
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every_s)
            if stop.is_set():
                return
            if loop.time() >= next_trim:
                next_trim = loop.time() + self.settings.trim_interval_s
                try:
                    await trim_acknowledged(self.redis, self.stream)
                    await self.forget_dead_consumers()
                except Exception:
                    log.exception("%s: trimming failed; will try again", self.short_name)
            stopped = [s for s in self._subscribers if not s.running]
            if not stopped:
                continue
            log.warning(
                "%s: consumer group %s was lost (Redis restarted without its data?); recreating",
                self.short_name,
                self.group,
            )
            try:
                await self.ensure_group()
                for sub in stopped:
                    await sub.start()
            except Exception:
                log.exception("%s: could not restart the consumer yet", self.short_name)


def _entries(msg: RedisBatchStreamMessage) -> list[Entry]:
    raw = msg.raw_message
    return [Entry(i, d) for i, d in zip(raw["message_ids"], raw["data"], strict=True)]


def _settled(batch: Batch) -> list[Entry]:
    return [e for e, _ in batch.dead] + [e for e, _ in batch.failed]


def _describe(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


async def trim_acknowledged(redis: Redis, stream: str) -> bytes | None:
    """Trim a work stream below the oldest entry some group still needs. Returns the bound.

    Every group counts, not only redalert's: an entry goes only once all of them acknowledged it.
    An entry a group has not read yet is above its last-delivered id; one it read but did not
    acknowledge is in its pending list.
    """
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return None  # no stream yet
    if not groups:
        return None  # nobody has started reading: everything is still work
    bounds = []
    for g in groups:
        bound = g["last-delivered-id"]
        if g["pending"]:
            summary = await redis.xpending(stream, g["name"])
            # Its pending entries may all have been acked since XINFO: then "min" is None.
            if summary.get("min") is not None:
                bound = min(bound, summary["min"], key=_entry_id)
        bounds.append(bound)
    lowest = min(bounds, key=_entry_id)
    if lowest in (b"0-0", "0-0"):
        return None
    # `~` drops whole macro nodes only (cheap); LIMIT 0 lifts the default cap of 100 nodes' worth
    # of entries a call, so one trim removes everything acknowledged, at any rate.
    await redis.execute_command("XTRIM", stream, "MINID", "~", lowest, "LIMIT", 0)
    return lowest


def _entry_id(value: bytes | str) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def ensure_group(redis: Redis, stream: str, group: str) -> None:
    # From id 0: entries published before the group first existed are work too.
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise


# XGROUP DELCONSUMER only if the consumer has nothing pending, checked in the same atomic step:
# deleting a consumer drops its pending entries from the group, which would lose work.
_REMOVE_IF_IDLE = """
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local name, pending
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1] elseif c[i] == 'pending' then pending = c[i + 1] end
  end
  if name == ARGV[2] then
    if pending ~= 0 then return 0 end
    return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) + 1
  end
end
return 0
"""


async def remove_consumer_if_idle(redis: Redis, stream: str, group: str, consumer: str) -> bool:
    try:
        return bool(await redis.eval(_REMOVE_IF_IDLE, 1, stream, group, consumer))
    except ResponseError:
        return False  # no stream or group


async def groups_present(redis: Redis, namespace: str) -> dict[str, bool]:
    """For /readyz: does every work stream have its consumer group?"""
    k = keys.Keys(namespace)
    out: dict[str, bool] = {}
    for stream, group in keys.GROUPS.items():
        try:
            groups = await redis.xinfo_groups(k.stream(stream))
        except ResponseError:
            groups = []
        out[stream] = any(g["name"] in (group, group.encode()) for g in groups)
    return out
