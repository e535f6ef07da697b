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

The severity model (`REDALERT_MODEL_FILE`) is the second layer: `engine` is the rules combined
with it (services.classify.model.combine). Its file is looked at on the same beat and swapped in
when it changed and loads; a file that does not load is logged and the model in use stays; a
file that is removed leaves the rules alone. An engine given by the caller instead of compiled
from the rules file (a pinned engine, in tests) is used alone.
"""

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.classify.model import Combined, ModelArtifact, ModelError
from services.classify.model.loader import load_model, stat_key
from services.classify.rules import ConfigError, Engine, compile_rules, read_rules_file
from services.classify.rules.store import RulesStore, digest
from shared import metrics
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
        self.model_path = settings.model_file if text is not None else None
        self._model_seen = stat_key(self.model_path) if self.model_path else (0, 0, 0)
        self.model: ModelArtifact | None = load_model(self.model_path)
        self._combined = Combined(engine, self.model)

    @property
    def engine(self) -> Engine | Combined:
        """What classifies posts: the rules, with the model where they are unsure."""
        return self._combined if self._combined.model is not None else self.rules_engine

    @engine.setter
    def engine(self, engine: Engine) -> None:
        self.rules_engine = engine
        self._combined = Combined(engine, getattr(self, "model", None))

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
        if self.model_path is not None:
            await self._sync_model(self.model_path)

    async def _sync_model(self, path: Path) -> None:
        seen = stat_key(path)
        if seen == self._model_seen:
            return
        self._model_seen = seen
        if seen == (0, 0, 0):
            if self.model is not None:
                log.warning("severity model %s removed: the rules decide alone", path)
            self.model, self._combined = None, Combined(self.rules_engine, None)
            return
        try:
            model = await asyncio.to_thread(ModelArtifact.load, path)
        except ModelError as e:
            kept = self.model.version if self.model else "none (the rules decide alone)"
            log.error("severity model not applied, keeping %s: %s", kept, e)
            return
        if self.model is None or model.version != self.model.version:
            log.info("severity model %s (from %s) now in use", model.version, path)
        self.model, self._combined = model, Combined(self.rules_engine, model)

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
            metrics.rules_reloaded(ok=False)
            log.error("%s; keeping rules %s", e, self.engine.version)
            return
        sha = digest(text)
        if sha == self._file_sha:
            return  # touched, not changed
        self._file_sha = sha
        try:
            engine = await self._compile(text, str(path))
        except ConfigError as e:
            metrics.rules_reloaded(ok=False)
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
        if doc.version == self.rules_engine.version:
            self.revision = doc.revision
            return
        try:
            engine = await self._compile(doc.yaml, f"revision {doc.revision}")
        except ConfigError as e:
            metrics.rules_reloaded(ok=False)
            self._skipped_revision = doc.revision
            log.error(
                "rules revision %d not applied, keeping %s:\n%s",
                doc.revision,
                self.engine.version,
                e,
            )
            return
        self.engine, self.revision = engine, doc.revision
        metrics.rules_reloaded(ok=True)
        log.info(
            "rules %s (revision %d, from %s) now in use", doc.version, doc.revision, doc.source
        )

    async def _compile(self, text: str, name: str) -> Engine:
        sha = digest(text)
        if sha not in self._compiled:  # keep the last one: the file's rules are often in Redis too
            self._compiled = {sha: await asyncio.to_thread(compile_rules, text, name)}
        return self._compiled[sha]
