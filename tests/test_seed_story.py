"""The story redalert was born from, end to end: real HTTP, real Redis, real apprise deliveries."""

import asyncio
import json

import httpx

from shared import keys
from tests.conftest import SEED, eventually


def seed_posts() -> list[dict]:
    with open(SEED) as f:
        return [json.loads(line) for line in f if line.strip()]


async def test_seed_thread_tells_subscribers_exactly_what_changed(
    settings, redis, run_services, make_sink
):
    red_only, everything = make_sink(), make_sink()
    posts = seed_posts()
    async with run_services(settings):
        base = f"http://127.0.0.1:{settings.http_port}"
        async with httpx.AsyncClient(base_url=base) as api:
            for name, sink, level in (
                ("red only", red_only, "red_alert"),
                ("everything", everything, "no_danger"),
            ):
                r = await api.post(
                    "/v1/subscriptions",
                    json={"name": name, "urls": [sink.url], "min_severity": level},
                )
                assert r.status_code == 201, r.text
            for post in posts:
                body = {k: post[k] for k in ("id", "source", "author", "text", "thread_id")}
                r = await api.post("/v1/posts", json=body)
                assert r.status_code == 202, r.text
                assert r.json() == {"accepted": [post["id"]], "duplicates": []}

            await eventually(lambda: len(everything.messages()) >= 3)
            await asyncio.sleep(0.5)  # anything extra would arrive now

            incidents = (await api.get("/v1/incidents")).json()
            assert len(incidents) == 1
            detail = (await api.get(f"/v1/incidents/{incidents[0]['id']}")).json()

    # Every post classified as its label says, in one incident.
    assert [p["id"] for p in detail["posts"]] == [p["id"] for p in posts]
    assert [p["severity"] for p in detail["posts"]] == [p["label"] for p in posts]
    # The incident: red alert at once, held through "assessing" posts, all clear, resolved.
    timeline = [(t["kind"], t["severity"], t["post"]["id"]) for t in detail["timeline"]]
    # Posts that add a topic widen it (subscriptions to that topic may match only now): events
    # in the timeline, no message to these subscribers, who hear of every topic already.
    widened = [t for t in detail["timeline"] if t["kind"] == "widened"]
    assert widened
    assert all(w["reason"].startswith("now also topic") for w in widened)
    assert [t for t in timeline if t[0] != "widened"] == [
        ("opened", "red_alert", "iss-1"),
        ("de_escalated", "no_danger", "iss-11"),
        ("resolved", "no_danger", "iss-12"),
    ]
    assert detail["incident"]["status"] == "resolved"

    assert [m["type"] for m in red_only.messages()] == ["failure", "success"]
    assert [m["type"] for m in everything.messages()] == ["failure", "success", "success"]
    titles = [m["title"] for m in everything.messages()]
    assert titles[0].startswith("[RED ALERT] ")
    assert titles[1].startswith("[ALL CLEAR] ")
    assert titles[2].startswith("[RESOLVED] ")
    # Every delivery is recorded.
    deliveries = await redis.xlen(f"{settings.namespace}:{keys.DELIVERIES}")
    assert deliveries == 5


async def test_resubmitting_the_thread_changes_nothing(settings, run_services, sink):
    posts = seed_posts()
    async with run_services(settings):
        base = f"http://127.0.0.1:{settings.http_port}"
        async with httpx.AsyncClient(base_url=base) as api:
            await api.post(
                "/v1/subscriptions",
                json={"name": "all", "urls": [sink.url], "min_severity": "no_danger"},
            )
            batch = [{k: p[k] for k in ("id", "source", "text", "thread_id")} for p in posts]
            first = (await api.post("/v1/posts", json=batch)).json()
            await eventually(lambda: len(sink.messages()) >= 3)
            again = (await api.post("/v1/posts", json=batch)).json()
            await asyncio.sleep(0.5)
    assert len(first["accepted"]) == 14
    assert first["duplicates"] == []
    assert again == {"accepted": [], "duplicates": [p["id"] for p in posts]}
    assert len(sink.messages()) == 3
