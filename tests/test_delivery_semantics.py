"""Nothing lost, nothing doubled: killed workers, abandoned entries, poison, foreign producers."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys

from services.classify.rules import Engine, load_rules_file
from services.classify.service import ClassifyService
from shared import keys
from shared.consumer import StreamConsumer
from shared.models import Post
from tests.conftest import eventually

THREADS, PER_THREAD = 30, 100


def thread_posts() -> list[Post]:
    """30 threads of 10 posts; each opens with a red alert, the rest are chatter."""
    posts = []
    for t in range(THREADS):
        for n in range(PER_THREAD):
            text = f"Gas leak reported at plant {t}" if n == 0 else f"Update {n} from plant {t}"
            posts.append(Post(id=f"p{t}-{n}", source="test", text=text, thread_id=f"plant-{t}"))
    return posts


async def publish(redis, settings, posts: list[Post]) -> None:
    stream = f"{settings.namespace}:{keys.POSTS}"
    async with redis.pipeline(transaction=False) as pipe:
        for p in posts:
            pipe.xadd(stream, {"data": p.model_dump_json()})
        await pipe.execute()


async def classified_ids(redis, settings) -> list[str]:
    entries = await redis.xrange(f"{settings.namespace}:{keys.CLASSIFIED}")
    return [json.loads(fields[b"data"])["post"]["id"] for _, fields in entries]


async def pending(redis, settings, stream: str) -> int:
    info = await redis.xpending(f"{settings.namespace}:{stream}", keys.GROUPS[stream])
    return info["pending"]


async def test_a_killed_classify_worker_loses_nothing_and_doubles_nothing(
    make_settings, redis, run_services, sink
):
    # One incident per thread: topic correlation off (the threads' wording is alike on purpose).
    settings = make_settings(batch_size=5, reclaim_idle_ms=300, correlation_window_s=0)
    posts = thread_posts()
    async with run_services(settings, "notify"):
        from shared.models import Subscription
        from shared.subscriptions import SubscriptionStore

        await SubscriptionStore(redis, keys.Keys(settings.namespace)).put(
            Subscription(name="sink", urls=[sink.url], min_severity="red_alert")
        )
        await publish(redis, settings, posts)
        env = {
            **os.environ,
            "REDALERT_REDIS_URL": settings.effective_redis_url,
            "REDALERT_NAMESPACE": settings.namespace,
            "REDALERT_BATCH_SIZE": "5",
            "REDALERT_CORRELATION_WINDOW_S": "0",
            "REDALERT_OWNER_LEASE_S": "1",  # its lease outlives it by at most this
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "classify"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await eventually(lambda: redis.xlen(f"{settings.namespace}:{keys.CLASSIFIED}"), 20)
            await eventually(
                lambda: _at_least(redis.xlen(f"{settings.namespace}:{keys.CLASSIFIED}"), 40), 20
            )
        finally:
            worker.send_signal(signal.SIGKILL)  # no clean shutdown: mid-batch, entries pending
            worker.wait()
        done_by_killed = len(await classified_ids(redis, settings))
        assert done_by_killed < len(posts), "the worker finished before it was killed"

        async with run_services(settings, "classify"):
            await eventually(  # a generous cap: this machine may be busy
                lambda: _equals(classified_ids(redis, settings), len(posts)), timeout=60
            )
            await eventually(lambda: _equals_async(pending(redis, settings, keys.POSTS), 0))
            await eventually(lambda: len(sink.messages()) >= THREADS, timeout=20)
            await asyncio.sleep(0.5)

    ids = await classified_ids(redis, settings)
    assert sorted(ids) == sorted(p.id for p in posts)  # each post classified exactly once
    events = await redis.xrange(f"{settings.namespace}:{keys.INCIDENT_EVENTS}")
    kinds = [json.loads(f[b"data"])["kind"] for _, f in events]
    assert kinds == ["opened"] * THREADS  # one incident per thread, opened once
    assert len(sink.messages()) == THREADS  # one red alert per incident, none twice
    assert len({m["title"] for m in sink.messages()}) == THREADS


async def _at_least(awaitable, n: int) -> bool:
    return (await awaitable) >= n


async def _equals(awaitable, n: int) -> bool:
    return len(await awaitable) == n


async def _equals_async(awaitable, n: int) -> bool:
    return (await awaitable) == n


async def test_entries_abandoned_without_ack_are_reclaimed_by_a_live_consumer(
    make_settings, redis, run_services
):
    settings = make_settings(reclaim_idle_ms=300)
    posts = thread_posts()[:50]
    await publish(redis, settings, posts)
    stream = f"{settings.namespace}:{keys.POSTS}"
    await redis.xgroup_create(stream, keys.CLASSIFY_GROUP, id="0", mkstream=True)
    # A consumer takes 20 entries and dies without acking them.
    taken = await redis.xreadgroup(keys.CLASSIFY_GROUP, "doomed", {stream: ">"}, count=20)
    assert len(taken[0][1]) == 20

    async with run_services(settings, "classify"):
        await eventually(lambda: _equals(classified_ids(redis, settings), 50), timeout=15)
        await eventually(lambda: _equals_async(pending(redis, settings, keys.POSTS), 0))
    assert sorted(await classified_ids(redis, settings)) == sorted(p.id for p in posts)


async def test_poison_entries_are_dead_lettered_and_the_consumer_keeps_going(
    settings, redis, run_services
):
    stream = f"{settings.namespace}:{keys.POSTS}"
    await redis.xadd(stream, {"data": b"\xff\xfe not utf-8"})
    await redis.xadd(stream, {"data": "{not json"})
    await redis.xadd(stream, {"source": "cli", "author": "someone"})  # no text
    good = Post(id="after-poison", text="Chemical leak at the depot", source="t")
    await redis.xadd(stream, {"data": good.model_dump_json()})

    async with run_services(settings, "classify"):
        await eventually(lambda: _equals(classified_ids(redis, settings), 1))
        await eventually(lambda: _equals_async(pending(redis, settings, keys.POSTS), 0))

    letters = await redis.xrange(f"{settings.namespace}:{keys.DEADLETTER}")
    errors = [json.loads(f[b"data"])["error"] for _, f in letters]
    assert len(errors) == 3
    assert "not valid UTF-8 JSON" in errors[0] or "JSON" in errors[0]
    assert "text: Field required" in errors[2]
    assert await classified_ids(redis, settings) == ["after-poison"]


class ExplodingEngine(Engine):
    def classify(self, post: Post):
        if "boom" in post.text:
            raise RuntimeError("rules engine exploded")
        return super().classify(post)


async def test_an_entry_that_keeps_failing_reaches_deadletter_with_its_error(make_settings, redis):
    settings = make_settings(reclaim_idle_ms=200, max_deliveries=3)
    engine = ExplodingEngine(load_rules_file(settings.rules_file))
    service = ClassifyService(redis, settings, engine=engine)
    await publish(
        redis,
        settings,
        [
            Post(id="bad", text="boom", source="t"),
            Post(id="good", text="Wildfire near the highway", source="t"),
        ],
    )
    stop = asyncio.Event()
    owning = asyncio.create_task(service.own(stop))  # the replica's reading loop
    try:
        await eventually(lambda: redis.xlen(f"{settings.namespace}:{keys.DEADLETTER}"), 15)
        await eventually(lambda: _equals_async(pending(redis, settings, keys.POSTS), 0))
    finally:
        stop.set()
        await owning
    letters = await redis.xrange(f"{settings.namespace}:{keys.DEADLETTER}")
    letter = json.loads(letters[0][1][b"data"])
    assert "rules engine exploded" in letter["error"]
    assert letter["attempts"] == 4  # the 4th delivery is the one that gives up
    assert json.loads(letter["fields"]["data"])["id"] == "bad"
    assert await classified_ids(redis, settings) == ["good"]


async def test_a_plain_xadd_producer_is_understood(settings, redis, run_services):
    stream = f"{settings.namespace}:{keys.POSTS}"
    await redis.xadd(
        stream,
        {
            "id": "x1",
            "source": "shell",
            "text": "Explosion reported at the refinery",
            "thread_id": "refinery",
            "published_at": "2026-11-26T08:00:00Z",
        },
    )
    async with run_services(settings, "classify"):
        await eventually(lambda: _equals(classified_ids(redis, settings), 1))
    entries = await redis.xrange(f"{settings.namespace}:{keys.CLASSIFIED}")
    c = json.loads(entries[0][1][b"data"])
    assert c["post"]["source"] == "shell"
    assert c["severity"] == "red_alert"
    assert c["incident_id"]


async def test_a_lost_consumer_group_is_recreated(settings, redis, run_services):
    """Redis restarted without its data: the group is gone; the service recreates it."""
    stream = f"{settings.namespace}:{keys.POSTS}"
    async with run_services(settings, "classify"):
        await redis.delete(stream)  # takes the group with it
        await asyncio.sleep(0.3)
        await eventually(lambda: _group_exists(redis, stream), timeout=10)
        await redis.xadd(stream, {"text": "Flood waters rising in the valley", "id": "after"})
        await eventually(lambda: _equals(classified_ids(redis, settings), 1), timeout=10)


async def _group_exists(redis, stream: str) -> bool:
    try:
        return any(
            g["name"] == keys.CLASSIFY_GROUP.encode() for g in await redis.xinfo_groups(stream)
        )
    except Exception:
        return False


def test_consumer_names_are_unique_per_process(settings):
    from shared.settings import Settings

    name = Settings(_env_file=None).consumer_name
    assert name == f"{socket.gethostname()}-{os.getpid()}"
    assert StreamConsumer(None, settings, keys.POSTS, None).consumer == settings.consumer_name  # type: ignore[arg-type]


async def test_work_streams_are_trimmed_only_below_what_every_group_acknowledged(settings, redis):
    from shared.consumer import trim_acknowledged

    stream = f"{settings.namespace}:{keys.POSTS}"
    ids = [await redis.xadd(stream, {"text": f"p{i}"}) for i in range(10)]
    assert await trim_acknowledged(redis, stream) is None  # no group yet: all of it is work
    await redis.xgroup_create(stream, "a", id="0")
    await redis.xgroup_create(stream, "b", id="0")
    # Group a reads and acks 8 entries; group b reads 5 and acks only the first 2.
    read_a = await redis.xreadgroup("a", "c", {stream: ">"}, count=8)
    await redis.xack(stream, "a", *[i for i, _ in read_a[0][1]])
    read_b = await redis.xreadgroup("b", "c", {stream: ">"}, count=5)
    await redis.xack(stream, "b", *[i for i, _ in read_b[0][1][:2]])

    bound = await trim_acknowledged(redis, stream)
    assert bound == ids[2]  # b still needs entries 2, 3, 4 (pending) and 5.. (unread)
    await redis.xtrim(stream, minid=bound)  # exact, to check nothing needed is below it
    remaining = [i for i, _ in await redis.xrange(stream)]
    assert remaining[0] <= ids[2]
    assert set(ids[2:]) <= set(remaining)
