"""Where subscriptions live (a Redis hash), how they are shown (masked), and the YAML file."""

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from redis.asyncio import Redis

from shared.keys import Keys
from shared.models import Subscription
from shared.secrets import is_valid_url, mask_url
from shared.severity import Severity
from shared.yamlfile import load_file


def public(sub: Subscription) -> dict[str, Any]:
    """A subscription as every API answer and log line shows it: URLs masked."""
    data = sub.model_dump(mode="json")
    data["urls"] = [mask_url(u) for u in sub.urls]
    return data


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "subscription"


class SubscriptionSpec(BaseModel):
    """What a user declares: the API body and each entry of the subscriptions file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    urls: list[str] = Field(min_length=1, max_length=100)
    min_severity: Severity = Severity.ASSESSING
    send_resolved: bool = True

    @field_validator("urls")
    @classmethod
    def _sendable(cls, urls: list[str]) -> list[str]:
        for i, url in enumerate(urls):
            if not is_valid_url(url):
                # Never echo the URL: it may carry a token.
                raise ValueError(f"urls[{i}] ({mask_url(url)}) is not a URL apprise can send to")
        return urls

    def to_subscription(self, **extra: Any) -> Subscription:
        return Subscription(**self.model_dump(), **extra)


class SubscriptionsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subscriptions: list[SubscriptionSpec] = Field(default_factory=list)


def load_subscriptions_file(path: Path) -> list[Subscription]:
    """Subscriptions declared in YAML; their ids come from their names, so re-applying updates."""
    specs = load_file(SubscriptionsFile, path).subscriptions
    return [s.to_subscription(id=f"file-{slug(s.name)}", origin="file") for s in specs]


class SubscriptionStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def all(self) -> list[Subscription]:
        raw = await self.redis.hgetall(self.keys.subscriptions)
        subs = [Subscription.model_validate_json(v) for v in raw.values()]
        return sorted(subs, key=lambda s: (s.created_at, s.id))

    async def get(self, sub_id: str) -> Subscription | None:
        raw = await self.redis.hget(self.keys.subscriptions, sub_id)
        return Subscription.model_validate_json(raw) if raw else None

    async def put(self, sub: Subscription) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.subscriptions, sub.id, sub.model_dump_json())
            pipe.incr(self.keys.subscriptions_version)
            await pipe.execute()

    async def delete(self, sub_id: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.subscriptions, sub_id)
            pipe.incr(self.keys.subscriptions_version)
            removed, _ = await pipe.execute()
        return bool(removed)

    async def version(self) -> int:
        return int(await self.redis.get(self.keys.subscriptions_version) or 0)

    async def apply(self, declared: list[Subscription]) -> dict[str, list[str]]:
        """Make the file-origin subscriptions exactly the declared ones."""
        current = {s.id: s for s in await self.all() if s.origin == "file"}
        wanted = {s.id: s for s in declared}
        report: dict[str, list[str]] = {"created": [], "updated": [], "removed": []}
        async with self.redis.pipeline(transaction=True) as pipe:
            for sub_id, sub in wanted.items():
                old = current.get(sub_id)
                if old is not None:
                    sub = sub.model_copy(update={"created_at": old.created_at})
                    if old == sub:
                        continue
                report["updated" if old else "created"].append(sub.name)
                pipe.hset(self.keys.subscriptions, sub_id, sub.model_dump_json())
            for sub_id, old in current.items():
                if sub_id not in wanted:
                    report["removed"].append(old.name)
                    pipe.hdel(self.keys.subscriptions, sub_id)
            pipe.incr(self.keys.subscriptions_version)
            await pipe.execute()
        return report
