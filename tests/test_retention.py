"""Everything ends: resolved incidents expire into a compact archive, work streams are trimmed as
they are consumed, and Redis memory comes back to where it was after a load has passed."""

import asyncio
import json
import os
import subprocess
import sys

import httpx
from redis.exceptions import ResponseError

from shared import keys
from shared.models import Post, Subscription
from shared.subscriptions import SubscriptionStore
from tests.conftest import eventually

ALARM = "Leak confirmed in the cooling loop of module {n}"
STAND_DOWN = "Secure from red alert for module {n}, the crew is safe"
SECONDS = 1 / 86_400  # in days


async def publish(redis, namespace: str, posts: list[Post]) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for p in posts:
            pipe.xadd(f"{namespace}:{keys.POSTS}", {"data": p.model_dump_json()})
        await pipe.execute()


def incident_posts(tag: str, threads: int, *, resolve: bool = True) -> list[Post]:
    posts = []
    for n in range(threads):
        texts = [ALARM, "Crew moved to the other segment, module {n}"]
        texts += [STAND_DOWN] if resolve else []
        for i, text in enumerate(texts):
            posts.append(
                Post(
                    id=f"{tag}-{n}-{i}", source="iss", text=text.format(n=n), thread_id=f"{tag}{n}"
                )
            )
    return posts


async def test_resolved_incidents_expire_into_an_archive_that_lists(
    make_settings, redis, run_services, sink
):
    settings = make_settings(retention_days=2 * SECONDS, correlation_window_s=0)
    k = keys.Keys(settings.namespace)
    await SubscriptionStore(redis, k).put(Subscription(name="sink", urls=[sink.url]))
    async with run_services(settings):
        await publish(redis, settings.namespace, incident_posts("r", 3))
        await publish(redis, settings.namespace, incident_posts("o", 1, resolve=False))
        await eventually(lambda: _at_least(redis.xlen(k.stream(keys.ARCHIVE)), 3), timeout=30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}") as http:
            page = (await http.get("/v1/incidents/archive", params={"limit": 2})).json()
            rest = (await http.get("/v1/incidents/archive", params={"before": page["next"]})).json()
            listed = (await http.get("/v1/incidents")).json()
            bad = await http.get("/v1/incidents/archive", params={"before": "x"})
        env = {**os.environ, "REDALERT_API_URL": f"http://127.0.0.1:{settings.http_port}"}
        cli = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "services.cli", "incidents", "archive"],
            env=env,
            capture_output=True,
            text=True,
        )

    archived = page["incidents"] + rest["incidents"]
    assert len(page["incidents"]) == 2
    assert rest["next"] is None
    assert sorted(a["title"] for a in archived) == sorted(ALARM.format(n=n) for n in range(3))
    assert cli.returncode == 0, cli.stderr
    assert sorted(line.split()[0] for line in cli.stdout.splitlines()) == sorted(
        a["id"] for a in archived
    )
    assert {a["severity"] for a in archived} == {"red_alert"}  # its peak, not "no danger"
    assert all(a["post_count"] == 3 and a["resolved_at"] for a in archived)
    assert bad.status_code == 422
    assert "before" in bad.text
    # Gone from the live list and from Redis, with everything that hung off them…
    assert [i["title"] for i in listed] == [ALARM.format(n=0)]  # only the open one stays
    for a in archived:
        for key in (
            k.incident(a["id"]),
            k.incident_posts(a["id"]),
            k.incident_timeline(a["id"]),
            k.incident_deliveries(a["id"]),
        ):
            assert not await redis.exists(key), key
    assert await redis.zcard(k.resolved_incidents) == 0
    # …but the open one keeps its posts, timeline and deliveries, with no expiry.
    (open_id,) = [i["id"] for i in listed]
    assert await redis.ttl(k.incident(open_id)) == -1
    assert await redis.llen(k.incident_deliveries(open_id)) >= 1


async def test_a_resolved_incident_expires_and_a_reopened_one_does_not(
    make_settings, redis, run_services
):
    settings = make_settings(retention_days=1)
    k = keys.Keys(settings.namespace)
    async with run_services(settings, "classify"):
        await publish(redis, settings.namespace, incident_posts("a", 1))
        await eventually(lambda: _at_least(redis.zcard(k.resolved_incidents), 1))
        (incident_id,) = [i.decode() for i in await redis.zrange(k.incidents, 0, -1)]
        ttl = await redis.ttl(k.incident(incident_id))
        assert 86_400 < ttl <= 2 * 86_400  # retention, plus a day's slack if nobody archives
        assert 86_400 < await redis.ttl(k.incident_posts(incident_id)) <= 2 * 86_400
        await publish(
            redis,
            settings.namespace,
            [Post(id="again", source="iss", text=ALARM.format(n=0), thread_id="a0")],
        )
        await eventually(lambda: _at_least(redis.xlen(k.stream(keys.CLASSIFIED)), 4))
    assert await redis.zcard(k.resolved_incidents) == 0
    assert await redis.ttl(k.incident(incident_id)) == -1
    assert await redis.ttl(k.incident_posts(incident_id)) == -1
    doc = json.loads(await redis.get(k.incident(incident_id)))
    assert doc["status"] == "open"
    assert doc["post_count"] == 4


async def test_streams_and_memory_come_back_after_sustained_load(
    make_settings, redis, run_services
):
    settings = make_settings(
        retention_days=1 * SECONDS,
        trim_interval_s=0.2,
        dedup_ttl_s=1,
        audit_maxlen=100,
        archive_maxlen=100,
        correlation_window_s=0,
        batch_size=50,
    )
    k = keys.Keys(settings.namespace)
    threads, rate = 200, 300  # 600 posts a period, at 300 posts/s

    async def load(tag: str) -> None:
        posts = incident_posts(tag, threads)
        for i in range(0, len(posts), rate // 10):
            await publish(redis, settings.namespace, posts[i : i + rate // 10])
            await asyncio.sleep(0.1)

    async def settled(opened: int) -> None:
        """Consumed, archived, trimmed: what a steady state leaves behind."""
        await eventually(lambda: _equal(_archived(redis, k), opened), timeout=60)
        await eventually(lambda: _equal(redis.zcard(k.incidents), 0))
        for stream, group in ((keys.POSTS, "classify"), (keys.INCIDENT_EVENTS, "notify")):
            await eventually(lambda s=stream, g=group: _drained(redis, k.stream(s), g), 30)
        await asyncio.sleep(1.5)  # dedup keys (1 s) expire; one more trim

    async with run_services(settings, "classify", "notify"):
        await load("one")
        await settled(threads)
        first = await _memory(redis, settings.namespace)
        lengths = {s: await redis.xlen(k.stream(s)) for s in keys.WORK_STREAMS}
        await load("two")
        await settled(2 * threads)
        second = await _memory(redis, settings.namespace)

    assert await redis.zcard(k.incidents) == 0  # every resolved incident expired
    assert await redis.zcard(k.resolved_incidents) == 0
    for stream in keys.WORK_STREAMS:  # trimmed as consumed: a few entries, not the load
        assert await redis.xlen(k.stream(stream)) < threads, stream
    assert lengths[keys.POSTS] < threads
    # Flat: the second period leaves what the first did (streams' partial nodes, capped audit
    # streams and archive, groups), not twice as much.
    assert second < first * 1.3 + 20_000, (first, second)


async def _memory(redis, namespace: str) -> int:
    total = 0
    async for key in redis.scan_iter(match=f"{namespace}:*", count=1000):
        total += await redis.memory_usage(key) or 0
    return total


async def _archived(redis, k: keys.Keys) -> int:
    """Incidents archived so far (the archive itself is capped: count what went in)."""
    try:
        return int((await redis.xinfo_stream(k.stream(keys.ARCHIVE)))["entries-added"])
    except ResponseError:  # no archive yet
        return 0


async def _drained(redis, stream: str, group: str) -> bool:
    groups = {g["name"].decode(): g for g in await redis.xinfo_groups(stream)}
    g = groups.get(group)
    return g is not None and g["pending"] == 0 and g.get("lag") in (0, None)


async def _at_least(awaitable, n: int) -> bool:
    value = await awaitable
    return value is not None and int(value) >= n


async def _equal(awaitable, n: int) -> bool:
    return (await awaitable) == n
