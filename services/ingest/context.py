"""What every route needs, built once per app: settings, Redis, publisher, stores, authority."""

import time
from dataclasses import dataclass

from fastapi import HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from redis.asyncio import Redis

from services.ingest.publish import Publisher
from shared import signing
from shared.audit import AuditTrail
from shared.auth import Authority, TokenStore, TokenTable, admin
from shared.incidents import IncidentReader
from shared.keys import Keys
from shared.netpolicy import TargetPolicy
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
    # The console's live pages block on XREAD, each holding a connection while it waits: their
    # own pool, so a hundred open pages never leave posts waiting for a connection.
    live: Redis

    @classmethod
    def build(cls, settings: Settings, redis: Redis, live: Redis) -> "Context":
        k = Keys(settings.namespace)
        cache_s = settings.token_cache_ms / 1000
        table = TokenTable(redis, k, cache_s) if cache_s > 0 else None
        return cls(
            settings=settings,
            redis=redis,
            keys=k,
            publisher=Publisher(redis, settings),
            subscriptions=SubscriptionStore(redis, k),
            incidents=IncidentReader(redis, k),
            authority=Authority(redis, settings, table),
            tokens=TokenStore(redis, k, table),
            audit=AuditTrail(redis, k, settings.audit_keep),
            live=live,
        )


def context_of(request: Request) -> Context:
    return request.app.state.ctx


async def ctx(request: Request) -> Context:
    """The dependency (`Depends(ctx)`). Async on purpose: FastAPI runs a plain `def` dependency
    on its thread pool, a hand-off that was a tenth of a small request's time."""
    return request.app.state.ctx


# Routes written before roles (shared/auth.py) said `Depends(require_token)` for writes: that is
# now the admin role. New routes say which role they need: `Depends(auth.responder)`…
require_token = admin


async def check_targets(settings: Settings, urls: dict[tuple[str | int, ...], str]) -> None:
    """422 naming each field whose URL's host the target policy refuses (shared/netpolicy.py)."""
    policy = TargetPolicy.of(settings)
    problems = [
        {"loc": ("body", *loc), "msg": problem, "type": "target_refused"}
        for loc, url in urls.items()
        if (problem := await policy.check_url(url))
    ]
    if problems:
        raise RequestValidationError(problems)


class Replayed(Exception):
    """A signed request seen before: answered 200 `{"replayed": true}`, and nothing is done."""


async def verify_signed(c: Context, secret: str, body: bytes, request: Request) -> None:
    """401 for a bad, missing or stale signature; Replayed for one already received."""
    found = signing.check(
        secret,
        body,
        request.headers.get(signing.HEADER),
        request.headers.get(signing.TIMESTAMP_HEADER),
        time.time(),
        c.settings.webhook_window_s,
        c.settings.dedup_ttl_s,
    )
    if found.problem is not None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, found.problem)
    key = c.keys.webhook_nonce(found.nonce)
    if not await c.redis.set(key, "1", nx=True, ex=found.remember_s):
        raise Replayed


async def within_cap(c: Context, key: str, cap: int, what: str, setting: str) -> None:
    """409 naming the cap when `key` (a hash) already holds `cap` entries: what users can create
    is bounded, so nobody can make every event read twenty thousand subscriptions."""
    if await c.redis.hlen(key) >= cap:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{what}: at most {cap} ({setting}); remove some first",
        )
