"""What the console costs a person: page times, and how soon a new incident reaches an open page.

    python bench/console.py [--incidents N] [--rounds R] [--json] [--redis-url URL]

Runs ingest and classify in-process on a free port, sends N red-alert posts (about six topics:
posts on one topic join one incident), then reports:
- list_page_ms / incident_page_ms / rules_page_ms: median time to serve the incidents list (N
  incidents), one incident's page (its posts explained with the rules in use), and the rules
  workbench, over R requests each;
- live_event_ms: median time from an action (`POST /v1/incidents/ID/resolve`, then `reopen`,
  alternately) to its `incident` event on the console's event stream (/console/events), over R
  actions: what an open page waits for (the same path as a new post's: a stream, classify, the
  incident-events stream, the page's stream).
Runs in its own namespace, deleted afterwards. Uses $REDALERT_REDIS_URL, else 127.0.0.1:6379,
else an embedded server.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from services.runtime import Runtime  # noqa: E402
from shared import keys  # noqa: E402
from shared.embedded import free_port, reachable_redis  # noqa: E402
from shared.settings import Settings  # noqa: E402

TOPICS = ["chemical plant", "wildfire", "flood", "earthquake", "data centre", "railway"]


def red(i: int) -> str:
    return f"Fire at the {TOPICS[i % len(TOPICS)]} number {i}, evacuate the area now"


async def timed(client: httpx.AsyncClient, path: str, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        r = await client.get(path)
        r.raise_for_status()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def live_event_ms(client: httpx.AsyncClient, rounds: int, incident_id: str) -> float:
    """From an action to its incident event on the page's stream, `rounds` times."""
    times = []
    for n in range(rounds):
        action = "resolve" if n % 2 == 0 else "reopen"
        async with client.stream("GET", "/console/events", timeout=30) as stream:
            lines = stream.aiter_lines()
            async for line in lines:
                if line.startswith("event: hello"):
                    break
            start = time.perf_counter()
            await client.post(f"/v1/incidents/{incident_id}/{action}")
            async for line in lines:
                if line.startswith("event: incident"):
                    times.append((time.perf_counter() - start) * 1000)
                    break
    return statistics.median(times)


async def run(redis_url: str, incidents: int, rounds: int) -> dict[str, float]:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        _env_file=None, redis_url=redis_url, namespace=namespace, http_port=free_port()
    )
    runtime = Runtime(settings, ("ingest", "classify"))
    await runtime.start()
    base = f"http://127.0.0.1:{settings.http_port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            await client.get("/")  # an open console: the session cookie
            await client.post("/v1/posts", json=[{"text": red(i)} for i in range(incidents)])
            classified = runtime.redis
            stream = keys.Keys(namespace).stream(keys.CLASSIFIED)
            for _ in range(2_400):  # two minutes at most
                if await classified.xlen(stream) >= incidents:
                    break
                await asyncio.sleep(0.05)
            listed = len((await client.get("/v1/incidents", params={"limit": 500})).json())
            some = (await client.get("/v1/incidents")).json()[0]["id"]
            await client.get(f"/incidents/{some}")  # the first compiles the rules in use
            figures = {
                "list_page_ms": await timed(client, "/", rounds),
                "incident_page_ms": await timed(client, f"/incidents/{some}", rounds),
                "rules_page_ms": await timed(client, "/rules", rounds),
                "live_event_ms": await live_event_ms(client, rounds, some),
                "incidents_listed": listed,
            }
    finally:
        await runtime.stop()
        redis = Redis.from_url(redis_url)
        found = [k async for k in redis.scan_iter(match=f"{namespace}:*", count=1000)]
        for i in range(0, len(found), 500):
            await redis.unlink(*found[i : i + 500])
        await redis.aclose()
    return {k: round(v, 2) for k, v in figures.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--incidents", type=int, default=100, help="red-alert posts sent first")
    parser.add_argument("--rounds", type=int, default=30, help="requests (and posts) measured")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--redis-url", default=os.environ.get("REDALERT_REDIS_URL"))
    args = parser.parse_args()
    with reachable_redis(args.redis_url) as url:
        figures = asyncio.run(run(url, args.incidents, args.rounds))
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:>18}: {value:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
