"""Incidents, events and subscriptions for delivery tests; reading what a live redalert wrote."""

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx

from shared import keys
from shared.models import (
    EventKind,
    Incident,
    IncidentEvent,
    IncidentStatus,
    Post,
    Subscription,
)
from shared.settings import Settings
from shared.severity import Severity

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def incident(
    severity: Severity = Severity.RED_ALERT,
    *,
    version: int = 1,
    status: IncidentStatus = IncidentStatus.OPEN,
    topics: tuple[str, ...] = ("iss",),
    sources: tuple[str, ...] = ("mastodon",),
    peak: Severity | None = None,
    id: str = "inc1",
) -> Incident:
    return Incident(
        id=id,
        title="ISS: there is a leak coming from the radiator on MLM",
        status=status,
        severity=severity,
        peak_severity=peak or severity,
        topics=list(topics),
        sources=list(sources),
        opened_at=T0,
        updated_at=T0,
        post_count=version,
        version=version,
    )


def event(inc: Incident, kind: EventKind = EventKind.OPENED, text: str = "leak!") -> IncidentEvent:
    return IncidentEvent(
        id=f"{inc.id}:{inc.version}",
        kind=kind,
        incident=inc,
        reason=f"{kind.value} at {inc.severity.label}",
        post=Post(source="mastodon", author="watcher", text=text, url="https://social/1"),
    )


def sub(**fields: Any) -> Subscription:
    fields.setdefault("name", "ops")
    fields.setdefault("urls", ["json://127.0.0.1:9/hook"])
    return Subscription(**fields)


async def post_thread(api: httpx.AsyncClient, thread: str, *texts: str) -> None:
    """One request, so its posts usually reach notify's consumers as one batch."""
    body = [
        {"id": f"{thread}-{n}", "source": "test", "thread_id": thread, "text": text}
        for n, text in enumerate(texts)
    ]
    r = await api.post("/v1/posts", json=body)
    assert r.status_code == 202, r.text


async def stream(redis: Any, settings: Settings, name: str) -> list[dict[str, Any]]:
    entries = await redis.xrange(f"{settings.namespace}:{name}")
    return [json.loads(fields[b"data"]) for _, fields in entries]


async def deliveries(redis: Any, settings: Settings) -> list[dict[str, Any]]:
    return await stream(redis, settings, keys.DELIVERIES)


async def deadletters(redis: Any, settings: Settings) -> list[dict[str, Any]]:
    return await stream(redis, settings, keys.DEADLETTER)


async def quiet_for(seconds: float) -> None:
    """Let anything that would (wrongly) arrive arrive."""
    await asyncio.sleep(seconds)


@asynccontextmanager
async def live(run_services: Any, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """redalert running (ingest, classify, notify), and a client for its API."""
    base = f"http://127.0.0.1:{settings.http_port}"
    async with run_services(settings), httpx.AsyncClient(base_url=base, timeout=60) as api:
        yield api


async def subscribe(api: httpx.AsyncClient, **spec: Any) -> dict[str, Any]:
    spec.setdefault("name", "ops")
    r = await api.post("/v1/subscriptions", json=spec)
    assert r.status_code == 201, r.text
    return r.json()


async def cli(settings: Settings, *args: str) -> tuple[int, str]:
    """Run `redalert ARGS --url <the live API>` in a thread; its exit code and output."""
    from services.cli.main import main

    def run() -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                code = main([*args, "--url", f"http://127.0.0.1:{settings.http_port}"])
            except SystemExit as e:
                code = int(e.code or 0)
        return code, out.getvalue()

    return await asyncio.to_thread(run)
