"""Correlation you can trust, end to end: who hears when a post joins an incident.

A joining post that changes who should hear (a new source, a new topic) tells the subscribers who
match only now; an acknowledgement never pages a subscriber for the first time; a post about
another place does not join an incident because it shares common words.
"""

import asyncio

import httpx

from shared import keys
from shared.models import IncidentCommand, Post, Subscription
from shared.subscriptions import SubscriptionStore
from tests.conftest import eventually


async def publish(redis, namespace: str, *posts: Post) -> None:
    for p in posts:
        await redis.xadd(f"{namespace}:{keys.POSTS}", {"data": p.model_dump_json()})


async def incidents(redis, k: keys.Keys) -> list[str]:
    return [i.decode() for i in await redis.zrange(k.incidents, 0, -1)]


async def test_a_post_from_a_new_source_tells_the_subscribers_of_that_source(
    make_settings, redis, run_services, make_sink
):
    settings = make_settings()
    k = keys.Keys(settings.namespace)
    everyone, usgs_only = make_sink(), make_sink()
    store = SubscriptionStore(redis, k)
    await store.put(Subscription(name="everyone", urls=[everyone.url]))
    await store.put(Subscription(name="usgs", urls=[usgs_only.url], sources=["usgs"]))
    async with run_services(settings, "classify", "notify"):
        # No thread across sources: the second joins by topic and wording.
        first = "Wildfire spreading near Cedar Creek road, evacuations ordered"
        await publish(redis, settings.namespace, Post(id="1", source="feed", text=first))
        await eventually(lambda: len(everyone.messages()) == 1)
        second = "USGS: wildfire near Cedar Creek road still spreading, evacuations ordered"
        await publish(redis, settings.namespace, Post(id="2", source="usgs", text=second))
        await eventually(lambda: len(usgs_only.messages()) == 1)
        await asyncio.sleep(0.5)
    (incident_id,) = await incidents(redis, k)
    assert len(everyone.messages()) == 1  # already told; same severity: nothing new for it
    told = usgs_only.messages()[0]
    assert "Cedar Creek" in str(told)
    timeline = [e.decode() for e in await redis.lrange(k.incident_timeline(incident_id), 0, -1)]
    assert '"kind":"widened"' in timeline[-1]
    assert "now also source usgs" in timeline[-1]


async def test_an_ack_never_sends_a_first_page(make_settings, redis, run_services, make_sink):
    settings = make_settings()
    k = keys.Keys(settings.namespace)
    early, late = make_sink(), make_sink()
    store = SubscriptionStore(redis, k)
    await store.put(Subscription(name="early", urls=[early.url]))
    async with run_services(settings, "classify", "notify"):
        await publish(
            redis,
            settings.namespace,
            Post(id="1", source="s", text="Leak confirmed", thread_id="t"),
        )
        await eventually(lambda: len(early.messages()) == 1)
        await store.put(Subscription(name="late", urls=[late.url]))  # made after it opened
        (incident_id,) = await incidents(redis, k)
        cmd = IncidentCommand(incident_id=incident_id, action="ack", actor="ana")
        await redis.xadd(k.stream(keys.COMMANDS), {"data": cmd.model_dump_json()})
        await eventually(lambda: _acknowledged(redis, k, incident_id))
        await asyncio.sleep(1.0)  # notify has had the ack event
        events = await redis.xlen(k.stream(keys.INCIDENT_EVENTS))
    assert events == 2  # opened, acknowledged
    assert late.messages() == []  # the ack paged nobody for the first time
    assert len(early.messages()) == 1


async def _acknowledged(redis, k: keys.Keys, incident_id: str) -> bool:
    doc = await redis.get(k.incident(incident_id))
    return doc is not None and b'"status":"acknowledged"' in doc


async def test_a_leak_in_another_town_opens_its_own_incident(make_settings, redis, run_services):
    settings = make_settings()
    k = keys.Keys(settings.namespace)
    async with run_services(settings):
        base = f"http://127.0.0.1:{settings.http_port}"
        async with httpx.AsyncClient(base_url=base) as http:
            for text in (
                "Gas leak reported on Main Street in Springfield, residents evacuated",
                "Gas leak on Main Street in Shelbyville, residents evacuated",
                "Springfield gas leak: crews say Main Street homes evacuated",
            ):
                r = await http.post("/v1/posts", json={"text": text, "source": "feed"})
                assert r.status_code == 202
                await asyncio.sleep(0.3)  # in this order
            await eventually(lambda: _at_least(redis.xlen(k.stream(keys.CLASSIFIED)), 3))
            listed = (await http.get("/v1/incidents")).json()
    assert len(listed) == 2
    by_title = {i["title"]: i["post_count"] for i in listed}
    assert by_title == {
        "Gas leak reported on Main Street in Springfield, residents evacuated": 2,
        "Gas leak on Main Street in Shelbyville, residents evacuated": 1,
    }


async def _at_least(awaitable, n: int) -> bool:
    return (await awaitable) >= n
