"""ingest: the HTTP front door. Validates, de-duplicates and publishes; serves reads."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from redis.asyncio import Redis

from services.ingest import console, contracts, docs, errors
from services.ingest.audit import AuditMiddleware
from services.ingest.context import Context
from services.ingest.http_metrics import HttpMetrics
from services.ingest.routes import (
    audit,
    corrections,
    deadletter,
    escalation,
    grafana,
    health,
    incidents,
    json_webhook,
    links,
    metrics,
    oncall,
    posts,
    routing,
    rules,
    silences,
    sources,
    subscriptions,
    tokens,
    webhooks,
)
from services.ingest.sources.poller import Poller
from shared import auth
from shared.redis import redis_client
from shared.settings import Settings
from shared.startup import prepare

log = logging.getLogger("redalert.ingest")


def create_app(
    settings: Settings, redis: Redis | None = None, *, prepared: bool = False
) -> FastAPI:
    """The API. `prepared`: the caller (services/runtime.py) has already run `prepare`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = redis or redis_client(settings)
        live = redis_client(settings)
        app.state.ctx = Context.build(settings, client, live)
        app.state.authority = app.state.ctx.authority
        if not prepared:
            await prepare(client, settings)
        # Every ingest replica polls: the sources' leases share the work out.
        app.state.poller = Poller(client, settings, app.state.ctx.publisher)
        await app.state.poller.start()
        try:
            yield
        finally:
            await app.state.poller.stop()
            await live.aclose()
            if redis is None:
                await client.aclose()

    app = FastAPI(
        title="redalert",
        version="0.1.0",
        description="Posts in; severities, incidents and notifications out.",
        lifespan=lifespan,
        docs_url=None,  # served from local files by services/ingest/docs.py
        redoc_url=None,
        dependencies=[Depends(auth.baseline)],  # every /v1 route: a viewer at least
    )
    # Set when the server is stopping: live pages' event streams end at once.
    app.state.closing = asyncio.Event()
    errors.install(app)
    app.add_middleware(AuditMiddleware)
    app.add_middleware(errors.BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(HttpMetrics)  # outermost: counts every answer, 413s included
    routers = (posts, sources, subscriptions, silences, incidents, links, webhooks, rules)
    routers += (oncall, escalation, routing, corrections, deadletter, health, metrics)
    routers += (tokens, audit, grafana, json_webhook)
    for module in routers:
        app.include_router(module.router)
    contracts.install(app)
    docs.install(app)
    console.install(app)
    return app
