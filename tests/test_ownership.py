"""One owner of incident state: bursts, replicas, hand-offs, take-overs and the lease's fence.

Replicas here are real processes (`redalert classify`), killed with SIGKILL or stopped with
SIGTERM as an orchestrator would, against the shared Redis, each test in its own namespace.
"""

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import uuid
from typing import Any

import pytest

from services.classify.lease import Lease, LeaseLost
from services.classify.owner import IncidentOwner
from shared import keys
from shared.consumer import Batch, Entry
from shared.models import Classification, Post
from shared.severity import Severity
from tests.conftest import eventually

TEXTS = [
    "Leak confirmed in the cooling loop",  # red alert
    "Still assessing the cooling loop with the ground",  # assessing (held: hysteresis)
    "The cooling loop is operating normally, crew not in any danger",  # all clear: de-escalates
    "They even have ham radio!",  # chatter
]


async def publish(redis, namespace: str, posts: list[Post]) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for p in posts:
            pipe.xadd(f"{namespace}:{keys.POSTS}", {"data": p.model_dump_json()})
        await pipe.execute()


async def classified(redis, namespace: str) -> int:
    return await redis.xlen(f"{namespace}:{keys.CLASSIFIED}")


async def at_least(awaitable, n: int) -> bool:
    return (await awaitable) >= n


async def test_a_burst_of_new_threads_on_one_topic_opens_every_incident(
    make_settings, redis, run_services
):
    # The burst that used to stall: every post its own thread, all about one topic, each its
    # own incident (correlation by wording off, as in the measurement that found it).
    settings = make_settings(correlation_window_s=0)
    n = 2_000
    posts = [
        Post(id=f"f{i}", source="feed", text=f"Wildfire spreading near ranch {i}", thread_id=str(i))
        for i in range(n)
    ]
    k = keys.Keys(settings.namespace)
    async with run_services(settings, "classify"):
        for i in range(0, n, 500):
            await publish(redis, settings.namespace, posts[i : i + 500])
        await eventually(lambda: at_least(classified(redis, settings.namespace), n), timeout=120)
    assert await redis.zcard(k.incidents) == n
    assert await redis.xlen(k.stream(keys.DEADLETTER)) == 0
    assert (await redis.xpending(k.stream(keys.POSTS), keys.CLASSIFY_GROUP))["pending"] == 0
    events = await redis.xrange(k.stream(keys.INCIDENT_EVENTS))
    assert [json.loads(f[b"data"])["kind"] for _, f in events] == ["opened"] * n


async def test_two_replicas_in_one_process_apply_a_thread_in_order(
    make_settings, redis, run_services
):
    a = make_settings(batch_size=3)
    b = a.model_copy(update={"consumer_name": a.consumer_name + "-b"})
    n = 240
    posts = [
        Post(id=f"p{i}", source="iss", text=TEXTS[i % len(TEXTS)], thread_id="loop")
        for i in range(n)
    ]
    async with run_services(a, "classify") as ra, run_services(b, "classify") as rb:
        await publish(redis, a.namespace, posts)
        await eventually(lambda: at_least(classified(redis, a.namespace), n), timeout=60)
        owners = [r.handlers["classify"] for r in (ra, rb) if r.handlers["classify"].owns]
        written = [r.handlers["classify"].owner.batches_written for r in (ra, rb)]
    assert len(owners) == 1  # one owner; the other stood by
    assert sorted(written)[0] == 0

    k = keys.Keys(a.namespace)
    (incident_id,) = [i.decode() for i in await redis.zrange(k.incidents, 0, -1)]
    incident = json.loads(await redis.get(k.incident(incident_id)))
    assert incident["post_count"] == n  # no update lost
    assert incident["version"] == n  # every post applied exactly once
    events = [json.loads(f[b"data"]) for _, f in await redis.xrange(k.stream(keys.INCIDENT_EVENTS))]
    assert len({e["id"] for e in events}) == len(events)  # no transition emitted twice
    assert events[0]["kind"] == "opened"
    # In stream order: red alert, (assessing held), all clear, chatter, red alert again…
    assert [e["kind"] for e in events[:3]] == ["opened", "de_escalated", "escalated"]
    for before, after in itertools.pairwise(events):
        assert after["previous_severity"] == before["incident"]["severity"]


# --- real processes ------------------------------------------------------------------------


def interleaved_workload(threads: int = 300) -> list[Post]:
    """Each thread's posts in order, the threads interleaved round by round; their wording
    differs in rotation, so threads escalate, hold, clear and chatter at different times."""
    rounds = 6
    posts = []
    for r in range(rounds):
        for t in range(threads):
            text = TEXTS[(t + r) % len(TEXTS)]
            posts.append(Post(id=f"t{t}r{r}", source="iss", text=text, thread_id=f"thread-{t}"))
    return posts


class Replicas:
    """`redalert classify` processes on one namespace."""

    def __init__(self, settings) -> None:
        self.env = {
            **os.environ,
            "REDALERT_REDIS_URL": settings.effective_redis_url,
            "REDALERT_NAMESPACE": settings.namespace,
            "REDALERT_BATCH_SIZE": "20",
            "REDALERT_OWNER_LEASE_S": "1",  # a killed owner's lease outlives it by at most this
            "REDALERT_LOG_LEVEL": "WARNING",
        }
        self.procs: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        env = {**self.env, "REDALERT_CONSUMER_NAME": f"replica-{uuid.uuid4().hex[:6]}"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "classify"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()


async def outcome(redis, namespace: str) -> dict[str, Any]:
    """Everything classify decided, without the times it decided it at."""
    k = keys.Keys(namespace)
    ids = sorted(i.decode() for i in await redis.zrange(k.incidents, 0, -1))
    incidents = {}
    for i in ids:
        doc = json.loads(await redis.get(k.incident(i)))
        for when in ("opened_at", "updated_at", "last_post_at", "resolved_at"):
            doc.pop(when, None)
        timeline = [json.loads(e) for e in await redis.lrange(k.incident_timeline(i), 0, -1)]
        doc["timeline"] = [(e["id"], e["kind"], e["reason"]) for e in timeline]
        incidents[i] = doc
    events = [json.loads(f[b"data"]) for _, f in await redis.xrange(k.stream(keys.INCIDENT_EVENTS))]
    joined = {
        (c := json.loads(f[b"data"]))["post"]["id"]: c.get("incident_id")
        for _, f in await redis.xrange(k.stream(keys.CLASSIFIED))
    }
    return {
        "incidents": incidents,
        "events": [(e["id"], e["kind"], e["incident"]["severity"]) for e in events],
        "joined": joined,
    }


async def test_replicas_killed_stopped_and_joining_reach_the_outcome_of_one(make_settings, redis):
    posts = interleaved_workload()
    chunks = [posts[:900], posts[900:1400], posts[1400:]]
    n = len(posts)

    # One replica, alone from start to end.
    one = make_settings()
    alone = Replicas(one)
    try:
        alone.start()
        for chunk in chunks:
            await publish(redis, one.namespace, chunk)
        await eventually(lambda: at_least(classified(redis, one.namespace), n), timeout=120)
    finally:
        alone.close()
    expected = await outcome(redis, one.namespace)

    # The same posts through replicas that come and go. Another namespace, same Redis.
    many = make_settings(namespace=f"{one.namespace}-b")
    replicas = Replicas(many)
    try:
        await publish(redis, many.namespace, chunks[0])
        first = replicas.start()
        await eventually(lambda: at_least(classified(redis, many.namespace), 100), timeout=60)
        second = replicas.start()  # joins mid-run: stands by
        first.send_signal(signal.SIGKILL)  # the owner dies mid-run, its batch unwritten
        first.wait()
        done_when_killed = await classified(redis, many.namespace)
        await publish(redis, many.namespace, chunks[1])
        await eventually(lambda: at_least(classified(redis, many.namespace), 1_100), timeout=60)
        replicas.start()  # joins mid-run
        second.send_signal(signal.SIGTERM)  # a clean stop hands off
        await asyncio.to_thread(second.wait)
        await publish(redis, many.namespace, chunks[2])
        await eventually(lambda: at_least(classified(redis, many.namespace), n), timeout=120)
    finally:
        replicas.close()
        got = await outcome(redis, many.namespace)
        async for key in redis.scan_iter(match=f"{many.namespace}:*", count=1000):
            await redis.unlink(key)
    assert done_when_killed < len(chunks[0]), "the first owner finished before it was killed"
    assert len(got["joined"]) == n  # every post classified once, none twice
    assert got["joined"] == expected["joined"]
    assert got["events"] == expected["events"]
    assert got["incidents"] == expected["incidents"]
    assert len(expected["incidents"]) > 1  # a workload with something to get wrong


# --- the fence -----------------------------------------------------------------------------


async def test_an_owner_that_lost_its_lease_writes_nothing(settings, redis):
    k = keys.Keys(settings.namespace)
    lease = Lease(redis, k.classify_owner, ttl_s=5)
    assert await lease.try_acquire()
    owner = IncidentOwner(redis, settings, lease)
    await redis.set(k.classify_owner, "another-replica")  # it paused; the lease moved on
    post = Post(id="late", source="s", text="Leak confirmed", thread_id="x")
    c = Classification(post=post, severity=Severity.RED_ALERT, topics=["iss"])
    batch = Batch(k.stream(keys.POSTS), keys.CLASSIFY_GROUP, [Entry(b"1-1", {})])
    with pytest.raises(LeaseLost):
        await owner.apply_posts(batch, [(batch.entries[0], c)])
    assert not lease.held
    assert await redis.zcard(k.incidents) == 0
    assert await redis.exists(k.applied(post.key)) == 0
    assert await redis.xlen(k.stream(keys.CLASSIFIED)) == 0
