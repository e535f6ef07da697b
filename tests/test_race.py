"""Two classify replicas racing on one incident never lose an update or emit a transition twice."""

import itertools
import json

import pytest

from shared import keys
from shared.models import Post
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


async def _classified(redis, namespace: str) -> int:
    return await redis.xlen(f"{namespace}:{keys.CLASSIFIED}")


@pytest.mark.parametrize("attempt", range(3))
async def test_two_replicas_on_one_incident(make_settings, redis, run_services, attempt):
    a = make_settings(batch_size=3)
    b = a.model_copy(update={"consumer_name": a.consumer_name + "-b"})
    n = 240
    posts = [
        Post(id=f"p{i}", source="iss", text=TEXTS[i % len(TEXTS)], thread_id="loop")
        for i in range(n)
    ]
    async with run_services(a, "classify") as ra, run_services(b, "classify") as rb:
        # The alarm that opens the incident first; then the replicas race on the rest.
        await publish(redis, a.namespace, posts[:1])
        await eventually(lambda: _equal(_classified(redis, a.namespace), 1))
        await publish(redis, a.namespace, posts[1:])
        await eventually(lambda: _equal(_classified(redis, a.namespace), n), timeout=60)
        conflicts = sum(r.handlers["classify"].writer.conflicts for r in (ra, rb))

    k = keys.Keys(a.namespace)
    (incident_id,) = [i.decode() for i in await redis.zrange(k.incidents, 0, -1)]
    incident = json.loads(await redis.get(k.incident(incident_id)))
    assert incident["post_count"] == n  # no update lost
    assert incident["version"] == n  # every post applied exactly once
    events = [json.loads(f[b"data"]) for _, f in await redis.xrange(k.stream(keys.INCIDENT_EVENTS))]
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids))  # no transition emitted twice
    assert len(await redis.lrange(k.incident_timeline(incident_id), 0, -1)) == len(events)
    assert events[0]["kind"] == "opened"
    # Each event follows from the one before it: the severities chain without gaps.
    for before, after in itertools.pairwise(events):
        assert after["previous_severity"] == before["incident"]["severity"]
    posted = [json.loads(p)["id"] for p in await redis.lrange(k.incident_posts(incident_id), 0, -1)]
    assert sorted(posted) == sorted(p.id for p in posts)
    assert conflicts > 0, "the replicas never raced; the test proved nothing"


async def _equal(awaitable, n: int) -> bool:
    return (await awaitable) == n


async def test_two_replicas_opening_an_incident_on_one_topic_agree(
    make_settings, redis, run_services
):
    a = make_settings(batch_size=1)
    b = a.model_copy(update={"consumer_name": a.consumer_name + "-b"})
    k = keys.Keys(a.namespace)
    conflicts = 0
    rounds = 6
    async with run_services(a, "classify") as ra, run_services(b, "classify") as rb:
        for r in range(rounds):
            pair = [
                Post(id=f"r{r}a", source="s", text=f"Wildfire {r} spreading near Cedar Creek road"),
                Post(
                    id=f"r{r}b",
                    source="s",
                    text=f"Wildfire {r} near Cedar Creek road spreading fast",
                ),
            ]
            await publish(redis, a.namespace, pair)
            await eventually(lambda r=r: _equal(_classified(redis, a.namespace), 2 * (r + 1)))
            # Resolve the round's incident so the next round starts afresh.
            for incident_id in await redis.zrange(k.open_incidents, 0, -1):
                await redis.zrem(k.open_by_topic("wildfire"), incident_id)
                await redis.zrem(k.open_incidents, incident_id)
        conflicts = sum(r.handlers["classify"].writer.conflicts for r in (ra, rb))
    assert await redis.zcard(k.incidents) == rounds  # one incident per pair, never two
    assert conflicts > 0, "the replicas never raced; the test proved nothing"
