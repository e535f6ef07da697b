"""classify: posts -> severity -> incidents. Reads `posts` and `commands`; owns incident state."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from services.classify.rules import Engine, compile_rules, read_rules_file
from services.classify.rules.live import LiveRules
from services.classify.writer import IncidentWriter
from shared import keys
from shared.codec import DecodeError, decode
from shared.consumer import Batch, StreamConsumer
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
        self.writer = IncidentWriter(redis, settings)
        self.consumers = [
            StreamConsumer(redis, settings, keys.POSTS, self.on_posts),
            StreamConsumer(redis, settings, keys.COMMANDS, self.on_commands),
        ]

    @property
    def engine(self) -> Engine:
        return self.rules.engine

    async def on_posts(self, batch: Batch) -> None:
        await self.rules.ready.wait()  # the rules in Redis, not only the file's, from the start
        engine = self.engine  # one rules version for the whole batch
        classified = []
        for entry in batch.entries:
            try:
                post = decode(entry.fields, Post)
            except DecodeError as e:
                batch.deadletter(entry, f"undecodable post: {e}")
                continue
            try:
                c: Classification = engine.classify(post)
            except Exception as e:  # a rules bug must not hold the other posts back
                log.exception("classifying post %s failed", post.key)
                batch.fail(entry, f"classification failed: {type(e).__name__}: {e}")
                continue
            classified.append((entry, c))
        await self.writer.apply_posts(batch, classified)

    async def on_commands(self, batch: Batch) -> None:
        commands = []
        for entry in batch.entries:
            try:
                commands.append((entry, decode(entry.fields, IncidentCommand)))
            except DecodeError as e:
                batch.deadletter(entry, f"undecodable command: {e}")
        await self.writer.apply_commands(batch, commands)

    def background(self) -> list[Callable[[asyncio.Event], Awaitable[None]]]:
        jobs = [self.sweep_quiet_incidents]
        return jobs if self.pinned else [*jobs, self.rules.watch]

    async def sweep_quiet_incidents(self, stop: asyncio.Event) -> None:
        """Resolve incidents that went quiet; every replica sweeps, compare-and-apply dedups."""
        quiet = self.settings.quiet_period_s
        if quiet <= 0:
            return
        every = min(30.0, max(0.2, quiet / 10))
        while not stop.is_set():
            try:
                if resolved := await self.writer.sweep_quiet():
                    log.info("resolved %d incident(s) after %d s without posts", resolved, quiet)
            except Exception:
                log.exception("quiet-period sweep failed; will try again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
