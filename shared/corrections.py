"""Operators' corrections: "this post was really red alert / assessing / no danger".

One correction per post (the latest wins; the one it replaced is kept in `previous`), in one
Redis hash. Exported in the labelled-set format of tests/data (README there), so a correction is
a labelled post like any other: `redalert rules eval --feedback` counts them, `redalert rules
suggest` mines them, and a model can be trained on them:

    async for item in iter_corrections(redis, keys):   # {"id", "label", "text", "source", …}
        ...
"""

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from shared.keys import Keys
from shared.models import utcnow
from shared.severity import Severity

TAG = "correction"  # the tag every exported correction carries


class Correction(BaseModel):
    source: str
    id: str  # the post's id within its source
    text: str
    author: str | None = None
    label: Severity  # what the operator says it was
    predicted: Severity | None = None  # what redalert said, when known
    rules_version: str | None = None  # of the rules that said it, when known
    incident_id: str | None = None
    by: str  # who corrected it
    why: str = ""
    at: datetime = Field(default_factory=utcnow)
    previous: list[dict[str, Any]] = Field(default_factory=list)  # earlier corrections

    @property
    def key(self) -> str:
        return f"{self.source}:{self.id}"

    def labelled(self) -> dict[str, Any]:
        """The labelled-set line (tests/data/README.md), with who, when and why besides."""
        line: dict[str, Any] = {
            "id": self.key,
            "label": self.label.value,
            "text": self.text,
            "source": self.source,
            "tags": [TAG],
            "by": self.by,
            "why": self.why,
            "at": self.at.isoformat(),
        }
        if self.author:
            line["author"] = self.author
        if self.predicted is not None:
            line["predicted"] = self.predicted.value
        if self.rules_version:
            line["rules_version"] = self.rules_version
        return line


class CorrectionStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def put(self, c: Correction) -> Correction:
        """Store (or replace) the correction of a post; a replaced one goes into `previous`."""
        old = await self.get(c.source, c.id)
        if old is not None:
            earlier = old.model_dump(mode="json", exclude={"previous", "text"})
            c = c.model_copy(update={"previous": [*old.previous, earlier][-10:]})
        await self.redis.hset(self.keys.corrections, c.key, c.model_dump_json())
        return c

    async def get(self, source: str, post_id: str) -> Correction | None:
        raw = await self.redis.hget(self.keys.corrections, f"{source}:{post_id}")
        return Correction.model_validate_json(raw) if raw else None

    async def all(self) -> list[Correction]:
        """Oldest first."""
        raw = await self.redis.hvals(self.keys.corrections)
        return sorted((Correction.model_validate_json(r) for r in raw), key=lambda c: c.at)

    async def of(self, post_keys: list[str]) -> dict[str, Correction]:
        if not post_keys:
            return {}
        raw = await self.redis.hmget(self.keys.corrections, post_keys)
        return {
            k: Correction.model_validate_json(r) for k, r in zip(post_keys, raw, strict=True) if r
        }


async def iter_corrections(redis: Redis, keys: Keys) -> AsyncIterator[dict[str, Any]]:
    """Every correction as a labelled-set dict (`id`, `label`, `text`, `source`, `author`,
    `tags`, and `by`, `why`, `at`, `predicted`, `rules_version`), oldest first."""
    for c in await CorrectionStore(redis, keys).all():
        yield c.labelled()


def to_jsonl(lines: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
