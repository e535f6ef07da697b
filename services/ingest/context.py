"""What every route needs, built once per app: settings, Redis, publisher, stores; and auth."""

import secrets
from dataclasses import dataclass

from fastapi import HTTPException, Request, status
from redis.asyncio import Redis

from services.ingest.publish import Publisher
from shared.incidents import IncidentReader
from shared.keys import Keys
from shared.settings import Settings
from shared.subscriptions import SubscriptionStore


@dataclass
class Context:
    settings: Settings
    redis: Redis
    keys: Keys
    publisher: Publisher
    subscriptions: SubscriptionStore
    incidents: IncidentReader

    @classmethod
    def build(cls, settings: Settings, redis: Redis) -> "Context":
        k = Keys(settings.namespace)
        return cls(
            settings=settings,
            redis=redis,
            keys=k,
            publisher=Publisher(redis, settings),
            subscriptions=SubscriptionStore(redis, k),
            incidents=IncidentReader(redis, k),
        )


def ctx(request: Request) -> Context:
    return request.app.state.ctx


def require_token(request: Request) -> None:
    """Writes need `Authorization: Bearer <REDALERT_API_TOKEN>` when a token is configured."""
    token = ctx(request).settings.api_token
    if token is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(
        given.strip().encode(), token.get_secret_value().encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong bearer token (Authorization: Bearer <REDALERT_API_TOKEN>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
