"""The rules a classify service uses right now, kept up to date without a restart.

Every `REDALERT_RULES_RELOAD_S` a service
1. looks at its rules file: when its content changed, and it validates, it is published to Redis
   as the next revision (see RulesStore.publish_file); a file that does not validate is logged
   with its file, line and reason, and nothing else happens;
2. looks at the revision in Redis: when it moved, the new rules are compiled and swapped in.
   Rules that do not compile (written to Redis by hand, or by a newer redalert) are logged and
   skipped: a bad file or body never replaces good rules.

Rules are compiled on a worker thread: a big rules file takes tens of milliseconds, which the
event loop (consumers, HTTP, leases) must not wait for.
"""

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.classify.rules import ConfigError, Engine, compile_rules, read_rules_file
from services.classify.rules.store import RulesStore, digest
from shared.keys import Keys
from shared.settings import Settings

log = logging.getLogger("redalert.rules")


def file_source(path: Path) -> str:
    return f"file {path}"


class LiveRules:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        engine: Engine,
        path: Path | None = None,
        text: str | None = None,
    ) -> None:
        self.engine = engine  # compiled from `text`, the rules file's content at start-up
        self.path = path
        self._compiled = {digest(text): engine} if text is not None else {}
        self.store = RulesStore(redis, Keys(settings.namespace))
        self.interval = settings.rules_reload_s
        self.revision = 0  # of the rules in use; 0: not from Redis (yet)
        self.ready = asyncio.Event()  # set once Redis was looked at, so posts wait for it
        self._file_seen: tuple[int, int, int] | None = None  # mtime, size, inode
        self._file_sha: str | None = None
        self._skipped_revision = 0

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sync()
            except RedisError as e:
                log.warning("could not check for new rules: %s", e)
            except Exception:
                log.exception("checking for new rules failed")
            finally:
                self.ready.set()  # with the file's rules if Redis cannot be read
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def sync(self) -> None:
        if self.path is not None:
            await self._sync_file(self.path)
        await self._sync_store()

    async def _sync_file(self, path: Path) -> None:
        try:
            st = os.stat(path)
        except OSError as e:
            if self._file_seen != (0, 0, 0):
                log.error("rules file %s: %s; keeping rules %s", path, e, self.engine.version)
                self._file_seen = (0, 0, 0)
            return
        seen = (st.st_mtime_ns, st.st_size, st.st_ino)
        if seen == self._file_seen:
            return
        self._file_seen = seen
        try:
            text = read_rules_file(path)
        except ConfigError as e:
            log.error("%s; keeping rules %s", e, self.engine.version)
            return
        sha = digest(text)
        if sha == self._file_sha:
            return  # touched, not changed
        self._file_sha = sha
        try:
            engine = await self._compile(text, str(path))
        except ConfigError as e:
            log.error("rules file not applied, keeping rules %s:\n%s", self.engine.version, e)
            return
        doc = await self.store.publish_file(text, engine, file_source(path))
        if doc is not None:
            log.info("rules file %s published as revision %d (%s)", path, doc.revision, doc.version)

    async def _sync_store(self) -> None:
        revision = await self.store.revision()
        if revision in (self.revision, self._skipped_revision) or revision == 0:
            return
        doc = await self.store.current()
        if doc is None:
            return
        if doc.version == self.engine.version:
            self.revision = doc.revision
            return
        try:
            engine = await self._compile(doc.yaml, f"revision {doc.revision}")
        except ConfigError as e:
            self._skipped_revision = doc.revision
            log.error(
                "rules revision %d not applied, keeping %s:\n%s",
                doc.revision,
                self.engine.version,
                e,
            )
            return
        self.engine, self.revision = engine, doc.revision
        log.info(
            "rules %s (revision %d, from %s) now in use", doc.version, doc.revision, doc.source
        )

    async def _compile(self, text: str, name: str) -> Engine:
        sha = digest(text)
        if sha not in self._compiled:  # keep the last one: the file's rules are often in Redis too
            self._compiled = {sha: await asyncio.to_thread(compile_rules, text, name)}
        return self._compiled[sha]
