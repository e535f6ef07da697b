"""ingest: the HTTP front door. Validates, de-duplicates and publishes; serves reads."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis

from services.ingest import errors
from services.ingest.context import Context
from services.ingest.routes import (
    deadletter,
    health,
    incidents,
    links,
    metrics,
    posts,
    rules,
    silences,
    sources,
    subscriptions,
    webhooks,
)
from services.ingest.sources.poller import Poller
from shared import keys
from shared.consumer import ensure_group
from shared.redis import redis_client
from shared.settings import Settings
from shared.subscriptions import SubscriptionStore, load_subscriptions_file

log = logging.getLogger("redalert.ingest")


async def prepare(redis: Redis, settings: Settings) -> None:
    """Start-up work shared by every service: groups exist, the subscriptions file is applied."""
    k = keys.Keys(settings.namespace)
    for stream, group in keys.GROUPS.items():
        # Created here too, so posts published before classify first starts are not skipped.
        await ensure_group(redis, k.stream(stream), group)
    if settings.subscriptions_file is not None:
        declared = load_subscriptions_file(settings.subscriptions_file)
        report = await SubscriptionStore(redis, k).apply(declared)
        log.info("subscriptions file %s applied: %s", settings.subscriptions_file, report)


def create_app(settings: Settings, redis: Redis | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = redis or redis_client(settings)
        app.state.ctx = Context.build(settings, client)
        await prepare(client, settings)
        # Every ingest replica polls: the sources' leases share the work out.
        app.state.poller = Poller(client, settings, app.state.ctx.publisher)
        await app.state.poller.start()
        try:
            yield
        finally:
            await app.state.poller.stop()
            if redis is None:
                await client.aclose()

    app = FastAPI(
        title="redalert",
        version="0.1.0",
        description="Posts in; severities, incidents and notifications out.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(errors.BodyLimit, max_bytes=settings.max_body_bytes)
    routers = (posts, sources, subscriptions, silences, incidents, links, webhooks, rules)
    routers += (deadletter, health, metrics)
    for module in routers:
        app.include_router(module.router)
    return app
