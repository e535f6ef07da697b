"""Where the rules in use live: one versioned document in Redis, with a short history.

Every change gets the next revision, written with the document in one compare-and-apply guarded
by the revision read, so two writers never both become revision N. Classify replicas poll the
revision and reload when it moves. The rules file reaches Redis the same way: a classify
service publishes the file when its content changed since it was last published, so the newest
change wins, whether it came through the API or the file.
"""

import asyncio
import hashlib
import random
from datetime import datetime

from pydantic import BaseModel
from redis.asyncio import Redis

from services.classify.rules.engine import Engine
from shared.atomic import CompareAndApply, Guarded
from shared.keys import Keys
from shared.models import utcnow

HISTORY_KEPT = 50
MAX_ATTEMPTS = 20


class RulesDoc(BaseModel):
    revision: int  # 1, 2, 3… one per change, in this namespace
    version: str  # digest of what the rules say: the `rules_version` of each classification
    source: str  # "api", or "file <path>"
    updated_at: datetime
    yaml: str

    def summary(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude={"yaml"})


class RevisionConflict(Exception):
    """The rules changed since the revision the writer said it had read (If-Match)."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the rules are at revision {current}")
        self.current = current


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class RulesStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._cas = CompareAndApply(redis)

    async def revision(self) -> int:
        return int(await self.redis.get(self.keys.rules_revision) or 0)

    async def current(self) -> RulesDoc | None:
        raw = await self.redis.get(self.keys.rules)
        return RulesDoc.model_validate_json(raw) if raw else None

    async def history(self) -> list[RulesDoc]:
        """Newest first."""
        return [
            RulesDoc.model_validate_json(raw)
            for raw in await self.redis.lrange(self.keys.rules_history, 0, -1)
        ]

    async def at(self, revision: int) -> RulesDoc | None:
        return next((d for d in await self.history() if d.revision == revision), None)

    async def put(
        self, text: str, engine: Engine, source: str, *, if_revision: int | None = None
    ) -> tuple[RulesDoc, bool]:
        """Store validated rules as the next revision; (the document, whether anything changed).

        Rules that say the same as the current ones (same version) are not a new revision.
        """
        for attempt in range(MAX_ATTEMPTS):
            await _backoff(attempt)
            current, revision = await self._read()
            if if_revision is not None and if_revision != revision:
                raise RevisionConflict(revision)
            if current is not None and current.version == engine.version:
                return current, False
            doc = self._next(revision, text, engine, source)
            w = self._write(doc, revision)
            if await self._cas(w):
                return doc, True
        raise RuntimeError(f"rules write conflicted {MAX_ATTEMPTS} times")

    async def publish_file(self, text: str, engine: Engine, source: str) -> RulesDoc | None:
        """Publish the rules file's content if it changed since it was last published.

        Returns the new document, or None when there was nothing to do (already published, by
        this or another replica) — or when rules were put through the API before any file was
        ever published: the file is then only remembered, and its next edit is published.
        """
        sha = digest(text)
        for attempt in range(MAX_ATTEMPTS):
            await _backoff(attempt)
            published = await self.redis.get(self.keys.rules_file)
            if published is not None and published.decode() == sha:
                return None
            current, revision = await self._read()
            remember_only = current is not None and (
                published is None or current.version == engine.version
            )
            if remember_only:
                w = Guarded()
                w.expect(self.keys.rules_file, published.decode() if published else None)
                w.do("SET", self.keys.rules_file, sha)
                if await self._cas(w):
                    return None
                continue
            doc = self._next(revision, text, engine, source)
            w = self._write(doc, revision)
            w.expect(self.keys.rules_file, published.decode() if published else None)
            w.do("SET", self.keys.rules_file, sha)
            if await self._cas(w):
                return doc
        raise RuntimeError(f"rules write conflicted {MAX_ATTEMPTS} times")

    async def _read(self) -> tuple[RulesDoc | None, int]:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(self.keys.rules)
            pipe.get(self.keys.rules_revision)
            raw, revision = await pipe.execute()
        return (RulesDoc.model_validate_json(raw) if raw else None), int(revision or 0)

    @staticmethod
    def _next(revision: int, text: str, engine: Engine, source: str) -> RulesDoc:
        return RulesDoc(
            revision=revision + 1,
            version=engine.version,
            source=source,
            updated_at=utcnow(),
            yaml=text,
        )

    def _write(self, doc: RulesDoc, read_revision: int) -> Guarded:
        k, data = self.keys, doc.model_dump_json()
        w = Guarded()
        w.expect(k.rules_revision, read_revision or None)
        w.do("SET", k.rules, data)
        w.do("SET", k.rules_revision, doc.revision)
        w.do("LPUSH", k.rules_history, data)
        w.do("LTRIM", k.rules_history, 0, HISTORY_KEPT - 1)
        return w


async def _backoff(attempt: int) -> None:
    # Writers that lost a race retry at random moments, so they do not collide again.
    if attempt:
        await asyncio.sleep(random.uniform(0, 0.005 * attempt))
