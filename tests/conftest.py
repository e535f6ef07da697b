"""Shared fixtures: a real Redis, a namespace per test, services in-process, local sinks.

Redis: $REDALERT_TEST_REDIS_URL, else the one on 127.0.0.1:6379, else an embedded valkey-server
started for the session. Every test gets its own namespace, deleted afterwards, so tests can
share one Redis (and run beside a developer's own redalert).
"""

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis

from services.runtime import Runtime
from shared.embedded import free_port, reachable_redis
from shared.settings import Settings
from tests.sinks import HttpSink

SEED = os.path.join(os.path.dirname(__file__), "..", "examples", "iss-coolant-leak.jsonl")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with reachable_redis(os.environ.get("REDALERT_TEST_REDIS_URL")) as url:
        yield url


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_settings(redis_url: str, namespace: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "namespace": namespace,
            "http_port": free_port(),
            "consumer_name": f"test-{uuid.uuid4().hex[:8]}",
            "block_ms": 50,
            "reclaim_idle_ms": 1_000,
            "send_backoff_s": 0.05,
            "send_timeout_s": 5,
            "public_url": "http://redalert.test",
            # Work streams are trimmed as soon as they are consumed (default every second);
            # tests read them afterwards to see what happened. Trimming tests set their own.
            "trim_interval_s": 3600,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def redis(redis_url: str, namespace: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{namespace}:*", count=1000)]
    for i in range(0, len(keys), 500):
        await client.unlink(*keys[i : i + 500])
    await client.aclose()


@pytest.fixture
def run_services(
    redis: Redis,
) -> Callable[..., Any]:
    """`async with run_services(settings, "classify", "notify") as rt:` — real services."""

    @asynccontextmanager
    async def run(settings: Settings, *services: str) -> AsyncIterator[Runtime]:
        rt = Runtime(settings, services or ("ingest", "classify", "notify"))
        await rt.start()
        try:
            yield rt
        finally:
            await rt.stop()

    return run


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as s:
        yield s


@pytest.fixture
def make_sink() -> Iterator[Callable[..., HttpSink]]:
    sinks: list[HttpSink] = []

    def make(**kwargs: Any) -> HttpSink:
        s = HttpSink(**kwargs).start()
        sinks.append(s)
        return s

    yield make
    for s in sinks:
        s.stop()


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0, every: float = 0.05
) -> None:
    """Wait until check() is true; fail with a clear message after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(every)
