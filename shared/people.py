"""People who can be paged: a name, how to reach them (apprise URLs), their time zone.

Contacts carry tokens like any apprise URL: every answer shows them masked, and an update that
sends back what GET showed keeps the originals.
"""

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator
from redis.asyncio import Redis

from shared.keys import Keys
from shared.models import utcnow
from shared.secrets import is_valid_url, mask_url

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,99}$"
MAX_PEOPLE = 10_000


def known_zone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r} (use an IANA name like Europe/Paris)") from None
    return tz


class PersonSpec(BaseModel):
    """`POST /v1/people`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Unique; letters, digits, `_ . @ -`.")
    contacts: list[str] = Field(min_length=1, max_length=20)  # apprise URLs, all are paged
    timezone: str = "UTC"

    @field_validator("contacts")
    @classmethod
    def _sendable(cls, urls: list[str]) -> list[str]:
        for i, url in enumerate(urls):
            if not is_valid_url(url):
                # Never echo the URL: it may carry a token.
                raise ValueError(
                    f"contacts[{i}] ({mask_url(url)}) is not a URL apprise can send to"
                )
        return urls

    @field_validator("timezone")
    @classmethod
    def _zone(cls, tz: str) -> str:
        return known_zone(tz)


class Person(PersonSpec):
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime | None = None


def public(person: Person) -> dict[str, Any]:
    data = person.model_dump(mode="json")
    data["contacts"] = [mask_url(u) for u in person.contacts]
    return data


def keep_masked_contacts(data: dict[str, Any], old: Person | None) -> dict[str, Any]:
    """A body that sends back masked contacts (as GET showed them) keeps the real ones."""
    if old is None or not isinstance(data.get("contacts"), list):
        return data
    shown = {mask_url(u): u for u in old.contacts}
    contacts = [shown.get(u, u) if isinstance(u, str) else u for u in data["contacts"]]
    return {**data, "contacts": contacts}


class PeopleStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def all(self) -> list[Person]:
        raw = await self.redis.hgetall(self.keys.people)
        return sorted((Person.model_validate_json(v) for v in raw.values()), key=lambda p: p.name)

    async def get(self, name: str) -> Person | None:
        raw = await self.redis.hget(self.keys.people, name)
        return Person.model_validate_json(raw) if raw else None

    async def names(self) -> set[str]:
        return {n.decode() for n in await self.redis.hkeys(self.keys.people)}

    async def count(self) -> int:
        return int(await self.redis.hlen(self.keys.people))

    async def put(self, person: Person) -> None:
        await self.redis.hset(self.keys.people, person.name, person.model_dump_json())

    async def delete(self, name: str) -> bool:
        return bool(await self.redis.hdel(self.keys.people, name))
