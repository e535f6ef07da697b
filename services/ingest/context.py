"""What every route needs, built once per app: settings, Redis, publisher, stores, authority."""

from dataclasses import dataclass

from fastapi import Request
from redis.asyncio import Redis

from services.ingest.publish import Publisher
from shared.audit import AuditTrail
from shared.auth import Authority, TokenStore, admin
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
    authority: Authority
    tokens: TokenStore
    audit: AuditTrail

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
            authority=Authority(redis, settings),
            tokens=TokenStore(redis, k),
            audit=AuditTrail(redis, k, settings.audit_keep),
        )


def ctx(request: Request) -> Context:
    return request.app.state.ctx


# Routes written before roles (shared/auth.py) said `Depends(require_token)` for writes: that is
# now the admin role. New routes say which role they need: `Depends(auth.responder)`…
require_token = admin
