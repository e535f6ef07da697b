"""Subscriptions: what a user may declare (validated), where they live (a Redis hash), how they
are shown (masked), and the YAML file applied to match."""

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from redis.asyncio import Redis
from redis.exceptions import WatchError

from shared import templates
from shared.keys import Keys
from shared.models import RateLimit, Subscription, SubscriptionFields, utcnow
from shared.secrets import MASK, is_valid_url, mask_url
from shared.url_hints import hint
from shared.yamlfile import ConfigError, load_file


def public(sub: Subscription) -> dict[str, Any]:
    """A subscription as every API answer and log line shows it: URLs and secrets masked."""
    data = sub.model_dump(mode="json")
    data["urls"] = [mask_url(u) for u in sub.urls]
    if sub.webhook is not None:
        data["webhook"] = {"url": mask_url(sub.webhook.url), "secret": MASK}
    return data


def keep_masked_secrets(data: dict[str, Any], old: Subscription) -> dict[str, Any]:
    """An update that sends back what GET showed (masked URLs, `****` secret) keeps the originals.

    So a client can GET a subscription, change one field and PUT it back without ever knowing
    its tokens.
    """
    data = dict(data)
    shown = {mask_url(u): u for u in old.urls}
    if isinstance(data.get("urls"), list):
        data["urls"] = [shown.get(u, u) if isinstance(u, str) else u for u in data["urls"]]
    hook = data.get("webhook")
    if isinstance(hook, dict) and old.webhook is not None:
        hook = dict(hook)
        if hook.get("secret") == MASK:
            hook["secret"] = old.webhook.secret
        if hook.get("url") == mask_url(old.webhook.url):
            hook["url"] = old.webhook.url
        data["webhook"] = hook
    return data


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "subscription"


# Bounds checked when a subscription is saved (API or file): a duration out of them is refused
# with a 422 naming the field. (Stored ones from before are not re-checked: notify isolates a
# subscription whose settings fail, see services/notify/service.py.)
REPEAT_INTERVAL_S = (30.0, 30 * 86_400.0)
RATE_WINDOW_S = (1.0, 30 * 86_400.0)


def _within(name: str, value: float, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {_shown(low)} and {_shown(high)}, not {value:g}")


def _shown(seconds: float) -> str:
    return f"{seconds / 86_400:g} days" if seconds >= 86_400 else f"{seconds:g} s"


class SubscriptionError(BaseModel):
    """A subscription's last own failure (a template, its settings): `last_error` in the API."""

    error: str
    event_id: str | None = None
    at: datetime


# Fields that make sense only for messages people read, not for a machine's webhook.
_MESSAGE_ONLY = ("quiet_hours", "repeat_interval", "rate_limit", "format", "templates", "urgency")


class SubscriptionSpec(SubscriptionFields):
    """What a user declares: the API body and each entry of the subscriptions file."""

    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(default_factory=list, max_length=100)

    @field_validator("urls")
    @classmethod
    def _sendable(cls, urls: list[str]) -> list[str]:
        for i, url in enumerate(urls):
            if not is_valid_url(url):
                # Never echo the URL: it may carry a token.
                raise ValueError(
                    f"urls[{i}] ({mask_url(url)}) is not a URL apprise can send to: {hint(url)}"
                )
        return urls

    @field_validator("repeat_interval")
    @classmethod
    def _repeat_bounds(cls, value: float | None) -> float | None:
        if value is not None:
            _within("repeat_interval", value, REPEAT_INTERVAL_S)
        return value

    @field_validator("rate_limit")
    @classmethod
    def _window_bounds(cls, value: RateLimit | None) -> RateLimit | None:
        if value is not None:
            _within("rate_limit.window", value.window, RATE_WINDOW_S)
        return value

    @field_validator("topics", "sources")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        return list(dict.fromkeys(n.strip().lower() for n in names if n.strip()))

    @model_validator(mode="after")
    def _consistent(self) -> "SubscriptionSpec":
        if bool(self.urls) == (self.webhook is not None):
            raise ValueError("give either `urls` (apprise) or `webhook`, not both or neither")
        if self.webhook is not None:
            # As GET shows them (format "text", the rest null) they may be sent back.
            given = [f for f in _MESSAGE_ONLY if getattr(self, f) not in (None, "text")]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: only for `urls` subscriptions; a webhook receives "
                    "every matching event as JSON"
                )
        if self.templates is not None:
            for part in ("title", "body"):
                source = getattr(self.templates, part)
                if source is not None and (error := templates.check(source, html=self.html)):
                    raise ValueError(f"templates.{part}: {error}")
        return self

    @property
    def html(self) -> bool:
        return self.format == "html"

    def to_subscription(self, **extra: Any) -> Subscription:
        return Subscription(**self.model_dump(), **extra)


class SubscriptionsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subscriptions: list[SubscriptionSpec] = Field(default_factory=list)


def file_subscriptions(specs: list[SubscriptionSpec]) -> list[Subscription]:
    """Declared subscriptions; their ids come from their names, so re-applying updates them."""
    subs = [s.to_subscription(id=f"file-{slug(s.name)}", origin="file") for s in specs]
    ids = [s.id for s in subs]
    alike = sorted({s.name for s in subs if ids.count(s.id) > 1})
    if alike:
        raise ValueError(f"names must differ (more than letters and spaces): {alike}")
    return subs


def load_subscriptions_file(path: Path) -> list[Subscription]:
    specs = load_file(SubscriptionsFile, path).subscriptions
    try:
        return file_subscriptions(specs)
    except ValueError as e:
        raise ConfigError([(str(path), None, f"subscriptions: {e}")]) from None


class SubscriptionStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def all(self) -> list[Subscription]:
        raw = await self.redis.hgetall(self.keys.subscriptions)
        subs = [Subscription.model_validate_json(v) for v in raw.values()]
        return sorted(subs, key=lambda s: (s.created_at, s.id))

    async def last_error(self, sub_id: str) -> SubscriptionError | None:
        raw = await self.redis.hget(self.keys.subscription_errors, sub_id)
        return SubscriptionError.model_validate_json(raw) if raw else None

    async def get(self, sub_id: str) -> Subscription | None:
        raw = await self.redis.hget(self.keys.subscriptions, sub_id)
        return Subscription.model_validate_json(raw) if raw else None

    async def put(self, sub: Subscription) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.subscriptions, sub.id, sub.model_dump_json())
            pipe.hdel(self.keys.subscription_errors, sub.id)  # changed: its last error is old news
            pipe.incr(self.keys.subscriptions_version)
            await pipe.execute()

    async def put_unique(self, sub: Subscription) -> Subscription | None:
        """Save unless another subscription has the same name (ignoring case): then save
        nothing and return that one. Checked and written under WATCH, so two clients creating
        one name at once cannot both succeed."""
        wanted = sub.name.casefold()
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self.keys.subscriptions)
                    for raw in (await pipe.hgetall(self.keys.subscriptions)).values():
                        other = Subscription.model_validate_json(raw)
                        if other.id != sub.id and other.name.casefold() == wanted:
                            await pipe.reset()
                            return other
                    pipe.multi()
                    pipe.hset(self.keys.subscriptions, sub.id, sub.model_dump_json())
                    pipe.incr(self.keys.subscriptions_version)
                    await pipe.execute()
                    return None
                except WatchError:
                    continue

    async def named(self, name: str) -> Subscription | None:
        wanted = name.casefold()
        return next((s for s in await self.all() if s.name.casefold() == wanted), None)

    async def delete(self, sub_id: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.subscriptions, sub_id)
            pipe.hdel(self.keys.subscription_errors, sub_id)
            pipe.incr(self.keys.subscriptions_version)
            removed, _, _ = await pipe.execute()
        return bool(removed)

    async def version(self) -> int:
        return int(await self.redis.get(self.keys.subscriptions_version) or 0)

    async def apply(self, declared: list[Subscription]) -> dict[str, list[str]]:
        """Make the file-origin subscriptions exactly the declared ones."""
        now = utcnow()
        current = {s.id: s for s in await self.all() if s.origin == "file"}
        wanted = {s.id: s for s in declared}
        report: dict[str, list[str]] = {"created": [], "updated": [], "removed": []}
        async with self.redis.pipeline(transaction=True) as pipe:
            for sub_id, sub in wanted.items():
                old = current.get(sub_id)
                if old is not None:
                    kept = {"created_at": old.created_at, "updated_at": old.updated_at}
                    if old == sub.model_copy(update=kept):
                        continue
                    sub = sub.model_copy(update={"created_at": old.created_at, "updated_at": now})
                report["updated" if old else "created"].append(sub.name)
                pipe.hset(self.keys.subscriptions, sub_id, sub.model_dump_json())
            for sub_id, old in current.items():
                if sub_id not in wanted:
                    report["removed"].append(old.name)
                    pipe.hdel(self.keys.subscriptions, sub_id)
            pipe.incr(self.keys.subscriptions_version)
            await pipe.execute()
        return report
