"""classify: posts -> severity -> incidents. Reads `posts` and `commands`; owns incident state.

Every replica runs `own`: it stands by until it holds the ownership lease (lease.py), then reads
both streams in order through the `classify` group — first what a previous owner left pending,
then new entries — and applies them (owner.py) until it stops or loses the lease. Stopping hands
off: the batch in hand is written, the lease released, and a standby takes over at once.
"""

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from services.classify.lease import Lease, LeaseLost
from services.classify.owner import IncidentOwner
from services.classify.rules import Engine, compile_rules, read_rules_file
from services.classify.rules.live import LiveRules
from shared import keys
from shared.codec import DecodeError, decode
from shared.consumer import Batch, Entry, StreamConsumer, ensure_group, trim_acknowledged
from shared.models import Classification, IncidentCommand, Post
from shared.settings import Settings

log = logging.getLogger("redalert.classify")


class ClassifyService:
    name = "classify"

    def __init__(self, redis: Redis, settings: Settings, engine: Engine | None = None) -> None:
        self.redis = redis
        self.settings = settings
        # The rules file must be good to start; after that a bad file or body is only logged.
        # An engine given here is pinned: no reload (tests use this).
        path = settings.rules_file
        self.pinned = engine is not None
        text = None
        if engine is None:
            text = read_rules_file(path)
            engine = compile_rules(text, str(path))
        self.rules = LiveRules(redis, settings, engine, path, text)
        if self.pinned:
            self.rules.ready.set()
        k = keys.Keys(settings.namespace)
        self.lease = Lease(redis, k.classify_owner, settings.owner_lease_s)
        self.owner = IncidentOwner(redis, settings, self.lease)
        # Read by `own` while this replica holds the lease, never by FastStream subscribers
        # (which would read whether or not it owns anything): the runtime registers none.
        self.streams = [
            StreamConsumer(redis, settings, keys.POSTS, self.on_posts),
            StreamConsumer(redis, settings, keys.COMMANDS, self.on_commands),
        ]
        self.consumers: list[StreamConsumer] = []
        # Seconds spent per stage, and posts seen (bench/pipeline.py reports them per post).
        self.timings: Counter[str] = self.owner.timings

    @property
    def engine(self) -> Engine:
        return self.rules.engine

    async def on_posts(self, batch: Batch) -> None:
        await self.rules.ready.wait()  # the rules in Redis, not only the file's, from the start
        engine = self.engine  # one rules version for the whole batch
        classified = []
        clock = time.perf_counter
        started = clock()
        decoding = 0.0
        for entry in batch.entries:
            t0 = clock()
            try:
                post = decode(entry.fields, Post)
            except DecodeError as e:
                batch.deadletter(entry, f"undecodable post: {e}")
                continue
            decoding += clock() - t0
            try:
                c: Classification = engine.classify(post)
            except Exception as e:  # a rules bug must not hold the other posts back
                log.exception("classifying post %s failed", post.key)
                batch.fail(entry, f"classification failed: {type(e).__name__}: {e}")
                continue
            classified.append((entry, c))
        ruled = clock()
        await self.owner.apply_posts(batch, classified)
        self.timings["decode"] += decoding
        self.timings["rules"] += ruled - started - decoding
        self.timings["posts"] += len(batch.entries)

    async def on_commands(self, batch: Batch) -> None:
        commands = []
        for entry in batch.entries:
            try:
                commands.append((entry, decode(entry.fields, IncidentCommand)))
            except DecodeError as e:
                batch.deadletter(entry, f"undecodable command: {e}")
        await self.owner.apply_commands(batch, commands)

    def background(self) -> list[Callable[[asyncio.Event], Awaitable[None]]]:
        return [self.own] if self.pinned else [self.own, self.rules.watch]

    @property
    def owns(self) -> bool:
        return self.lease.held

    async def own(self, stop: asyncio.Event) -> None:
        """Stand by until the lease is free, own incident state while it is ours, hand off."""
        poll = min(1.0, self.lease.renew_every_s)
        while not stop.is_set():
            try:
                acquired = await self.lease.try_acquire()
            except Exception:
                log.exception("classify: could not ask for the ownership lease; will try again")
                acquired = False
            if not acquired:
                await _wait(stop, poll)
                continue
            log.info("classify: %s owns incident state", self.settings.consumer_name)
            lost = asyncio.Event()
            keeper = asyncio.create_task(self.lease.keep(stop, lost))
            try:
                await self._serve(stop, lost)
            except LeaseLost:
                log.warning("classify: lost the ownership lease; standing by")
            except Exception:
                log.exception("classify: owning failed; handing off and standing by")
                await _wait(stop, poll)
            finally:
                keeper.cancel()
                with contextlib.suppress(Exception):
                    await self.lease.release()
                for s in self.streams:  # leave the groups, unless entries are still pending
                    with contextlib.suppress(Exception):
                        await s.leave()

    async def _serve(self, stop: asyncio.Event, lost: asyncio.Event) -> None:
        self.owner.take_over()  # another owner may have written since this one last owned
        for s in self.streams:
            await ensure_group(self.redis, s.stream, s.group)
        for s in self.streams:  # what the previous owner read and did not apply, in order
            await self._claim(s, min_idle_ms=0)
        loop = asyncio.get_running_loop()
        quiet = self.settings.quiet_period_s
        sweep_every = min(30.0, max(0.2, quiet / 10))
        retention_s = self.settings.retention_days * 86_400
        archive_every = min(60.0, max(0.2, retention_s / 10))
        next_sweep = next_reclaim = next_trim = next_archive = loop.time()
        group, me = keys.CLASSIFY_GROUP, self.settings.consumer_name
        by_stream = {s.stream.encode(): s for s in self.streams}
        while self.lease.held and not (stop.is_set() or lost.is_set()):
            reply = await self.redis.xreadgroup(
                group,
                me,
                {s.stream: ">" for s in self.streams},
                count=self.settings.batch_size,
                block=self.settings.block_ms,
            )
            for stream, rows in reply or []:
                name = stream if isinstance(stream, bytes) else stream.encode()
                await by_stream[name].process(_rows(rows), reclaimed=False)
            now = loop.time()
            if now >= next_reclaim:  # entries that failed: retried, dead-lettered after max
                next_reclaim = now + self.settings.reclaim_idle_ms / 2000
                for s in self.streams:
                    await self._claim(s, min_idle_ms=self.settings.reclaim_idle_ms)
            if quiet > 0 and now >= next_sweep:
                next_sweep = now + sweep_every
                if resolved := await self.owner.sweep_quiet():
                    log.info("resolved %d incident(s) after %d s without posts", resolved, quiet)
            if now >= next_archive:
                next_archive = now + archive_every
                if archived := await self.owner.archive_expired():
                    log.info("archived %d incident(s) resolved over their retention", archived)
            if now >= next_trim:
                next_trim = now + self.settings.trim_interval_s
                for s in self.streams:
                    await trim_acknowledged(self.redis, s.stream)
                    await s.forget_dead_consumers()  # of owners that died, once claimed

    async def _claim(self, s: StreamConsumer, *, min_idle_ms: int) -> None:
        """Take over pending entries idle at least this long and process them, oldest first."""
        start: bytes | str = "0-0"
        while self.lease.held:
            start, rows, *_ = await self.redis.xautoclaim(
                s.stream,
                s.group,
                self.settings.consumer_name,
                min_idle_time=min_idle_ms,
                start_id=start,
                count=self.settings.batch_size,
            )
            if rows:
                await s.process(_rows(rows), reclaimed=True)
            if start in (b"0-0", "0-0"):
                return


def _rows(rows: list[tuple[bytes, dict[bytes, bytes] | None]]) -> list[Entry]:
    # XAUTOCLAIM gives None fields for entries deleted or trimmed while pending.
    return [Entry(i, f) for i, f in rows]  # type: ignore[arg-type]


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
