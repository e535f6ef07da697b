"""The loop every ingest replica runs: poll the sources that are due, and only those.

Per source and poll: take the source's lease (one replica at a time; the others poll other
sources), read pages from the cursor, publish each page's new posts (the publisher drops any it
has seen, atomically), then keep the page's cursor — in that order, so a crash between the two
re-reads a page whose posts are then dropped as duplicates: nothing is lost, nothing doubled.
Any failure is recorded in the source's status and delays its next poll; the loop goes on.
"""

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from services.ingest.publish import Publisher
from services.ingest.sources import cap, mastodon, rss, statuspage
from services.ingest.sources.base import Cursor, Page, SourceError
from services.ingest.sources.fetch import Http
from services.ingest.sources.schedule import next_delay
from services.ingest.sources.spec import Source, SourceKind, load_sources_file
from services.ingest.sources.store import SourceStore
from shared.keys import Keys
from shared.models import utcnow
from shared.netpolicy import TargetPolicy
from shared.secrets import redact
from shared.settings import Settings

log = logging.getLogger("redalert.sources")

MAX_CONCURRENT_POLLS = 16  # per replica

Reader = Callable[[Http, Source, Cursor], AsyncIterator[Page]]
READERS: dict[SourceKind, Reader] = {
    SourceKind.RSS: rss.read,
    SourceKind.MASTODON: mastodon.read,
    SourceKind.STATUSPAGE: statuspage.read,
    SourceKind.CAP: cap.read,
}


@dataclass
class PollOutcome:
    source: str
    ingested: int = 0
    duplicates: int = 0
    not_modified: bool = False
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    next_poll_in_s: float | None = None
    busy: str | None = None  # another replica holds the lease: who

    def summary(self) -> str:
        if self.busy:
            return f"being polled by {self.busy}"
        if self.error:
            return f"error: {self.error}"
        if self.not_modified:
            return "not modified"
        return f"{self.ingested} new, {self.duplicates} already seen"


class Poller:
    def __init__(
        self, redis: Redis, settings: Settings, publisher: Publisher, http: Http | None = None
    ) -> None:
        self.settings = settings
        self.store = SourceStore(redis, Keys(settings.namespace))
        self.publisher = publisher
        self.http = http or Http(settings.poll_timeout_s, policy=TargetPolicy.of(settings))
        # Long enough for one request and its publish; renewed after every page.
        self.lease_ms = int((2 * settings.poll_timeout_s + 5) * 1_000)
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.settings.sources_file is not None:
            declared = load_sources_file(self.settings.sources_file)
            report = await self.store.apply(declared, now=time.time())
            log.info("sources file %s applied: %s", self.settings.sources_file, report)
        await self.store.schedule_all(now=time.time())
        self._loop = asyncio.create_task(self.run())

    async def stop(self) -> None:
        self._stop.set()
        tasks = [t for t in (self._loop, *self._inflight.values()) if t is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:
                task.cancel()  # a poll cut here re-reads its page next time; publishing is atomic
            await asyncio.gather(*pending, return_exceptions=True)
        await self.http.aclose()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                self._start_due(await self.store.due(time.time(), limit=MAX_CONCURRENT_POLLS * 2))
            except Exception as e:  # Redis away for a moment: try again next tick
                log.warning("looking for sources due failed: %s", e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.settings.poll_tick_s)

    def _start_due(self, names: list[str]) -> None:
        random.shuffle(names)  # replicas start with different sources, so they share the work
        for name in names:
            if name in self._inflight or len(self._inflight) >= MAX_CONCURRENT_POLLS:
                continue
            task = asyncio.create_task(self._poll_due(name))
            self._inflight[name] = task
            task.add_done_callback(lambda _, n=name: self._inflight.pop(n, None))

    async def _poll_due(self, name: str) -> None:
        try:
            await self.poll(name, only_if_due=True)
        except Exception:
            log.exception("polling source %s failed", name)

    # --- one poll ------------------------------------------------------------------------------

    async def poll(
        self, name: str, *, only_if_due: bool = False, wait_s: float = 0.0
    ) -> PollOutcome | None:
        """Poll a source now. If another replica is at it, wait up to `wait_s` for it to finish,
        else say who is. None: there is no such polled source."""
        token = f"{self.settings.consumer_name}/{uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + wait_s
        while not await self.store.acquire(name, token, self.lease_ms):
            if time.monotonic() >= deadline:
                holder = await self.store.holder(name)
                return PollOutcome(name, busy=(holder or "another replica").rpartition("/")[0])
            await asyncio.sleep(0.05)
        try:
            # Another replica may have polled it between our look at the schedule and the lease.
            if only_if_due and not await self.store.is_due(name, time.time()):
                return PollOutcome(name)
            source = await self.store.get(name)
            if source is None or not source.polled:
                await self.store.forget(name)
                return None
            return await self._poll(source, token)
        finally:
            await self.store.release(name, token)

    async def _poll(self, source: Source, token: str) -> PollOutcome:
        name, store, began = source.name, self.store, time.time()
        await store.started(name, token, utcnow(), self.settings.consumer_name)
        cursor = await store.cursor(name)
        if cursor is None or cursor.target != source.target:
            cursor = Cursor(target=source.target)
        outcome = PollOutcome(name)
        retry_after: float | None = None
        try:
            pages = READERS[source.kind](self.http, source, cursor)
            async with contextlib.aclosing(pages):
                async for page in pages:
                    if not await self._keep(source, token, page, outcome):
                        return outcome
        except SourceError as e:
            outcome.error, retry_after = str(e), e.retry_after_s
        except Exception as e:  # a bug or an outage must not stop the loop, nor lose the cursor
            log.exception("source %s: unexpected failure", name)
            outcome.error = f"internal error: {type(e).__name__}: {e}"
        if outcome.error is not None:
            outcome.error = redact(outcome.error, source.secrets())[:1_000]
        await self._schedule(source, token, outcome, retry_after, began)
        return outcome

    async def _keep(self, source: Source, token: str, page: Page, outcome: PollOutcome) -> bool:
        """Publish a page, then keep its cursor. False if the lease was lost meanwhile."""
        accepted, duplicates = await self.publisher.posts(page.posts)
        outcome.ingested += len(accepted)
        outcome.duplicates += len(duplicates)
        outcome.not_modified = page.not_modified
        outcome.warnings += page.warnings
        if not await self.store.commit(
            source.name, token, page.cursor, len(accepted), page.warnings
        ):
            # Stalled past the lease (or deleted): another replica goes on from the last cursor.
            outcome.error = "lease lost mid-poll; nothing more written by this poll"
            log.warning("source %s: %s", source.name, outcome.error)
            return False
        if accepted:
            log.info("source %s: %d new posts", source.name, len(accepted))
        await self.store.renew(source.name, token, self.lease_ms)
        return True

    async def _schedule(
        self,
        source: Source,
        token: str,
        outcome: PollOutcome,
        retry_after: float | None,
        began: float,
    ) -> None:
        s = self.settings
        failures = 0 if outcome.error is None else await self.store.failures(source.name) + 1
        delay = next_delay(
            source.interval_s,
            failures,
            backoff_s=s.poll_backoff_s,
            backoff_max_s=s.poll_backoff_max_s,
            retry_after_s=retry_after,
        )
        outcome.next_poll_in_s = delay
        # A healthy source keeps its rhythm (interval from poll to poll); a failing one rests
        # for the whole delay after its failure.
        at, next_at = utcnow(), (began if outcome.error is None else time.time()) + delay
        if outcome.error is None:
            await self.store.succeeded(source.name, token, at, next_at)
            return
        await self.store.failed(source.name, token, at, outcome.error, next_at)
        log.warning(
            "source %s: %s (failure %d in a row; next poll in %.1fs)",
            source.name,
            outcome.error,
            failures,
            delay,
        )
