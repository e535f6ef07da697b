"""What reading sources costs: parsing, and polls against a local server into a real Redis.

    python bench/sources.py [--items N] [--rounds R] [--json] [--redis-url URL]

Reports:
- rss_items_per_s / mastodon_statuses_per_s: the pure parsers alone (an RSS 2.0 document of N
  items with HTML summaries; pages of 40 Mastodon statuses with replies and boosts);
- poll_new_items_per_s: one poll of a feed whose N items are all new — HTTP GET from a local
  server, parse, publish through the de-duplicating Lua script, keep the cursor;
- poll_unchanged_ms / poll_not_modified_ms: median time of a poll of the same feed when nothing
  is new: served in full without validators (every item compared and skipped), and answered 304
  to a conditional GET.
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

from redis.asyncio import Redis  # noqa: E402

from services.ingest.publish import Publisher  # noqa: E402
from services.ingest.sources import mastodon  # noqa: E402
from services.ingest.sources.poller import Poller  # noqa: E402
from services.ingest.sources.rss import parse_feed  # noqa: E402
from services.ingest.sources.spec import Source  # noqa: E402
from shared.embedded import reachable_redis  # noqa: E402
from shared.settings import Settings  # noqa: E402
from tests.source_servers import (  # noqa: E402
    HARWOOD,
    WATCHER,
    FeedDocument,
    Item,
    SourceServer,
    boost,
    rss2,
    status,
)

HTML = (
    "<p>A leak from a radiator on the Russian <strong>Nauka</strong> laboratory module has been "
    "confirmed by the crew; NASA asked for the window shutters to be closed.</p>"
    "<p><a href='https://example.org/live'>Listen live</a> &amp; follow along.</p>"
)


def items(n: int) -> list[Item]:
    return [Item(str(10_000 + i), f"Station update {i}", HTML, minutes=i) for i in range(n)]


def statuses(n: int) -> list[dict]:
    out: list[dict] = []
    for i in range(n):
        sid = str(200_000 + i)
        if i % 10 == 9:
            out.append(boost(sid, WATCHER, out[-1]))
        else:
            parent = out[-1] if i % 3 and out else None
            out.append(status(sid, HARWOOD, HTML, in_reply_to=parent))
    return list(reversed(out))


def rate(fn, units: int, min_s: float = 1.0) -> float:
    runs, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < min_s or runs < 3:
        fn()
        runs += 1
    return units * runs / elapsed


async def polls(redis_url: str, n: int, rounds: int) -> dict[str, float]:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    settings = Settings(_env_file=None, redis_url=redis_url, namespace=namespace)
    redis = Redis.from_url(redis_url)
    server = SourceServer().start()
    full = FeedDocument(items(n), validators=())
    conditional = FeedDocument(items(n))
    poller = Poller(redis, settings, Publisher(redis, settings))
    try:
        for name, doc in (("full", full), ("conditional", conditional)):
            url = server.route(f"/{name}.xml", doc)
            await poller.store.add(Source(name=name, kind="rss", url=url), now=time.time())
        started = time.perf_counter()
        first = await poller.poll("full")
        new_per_s = first.ingested / (time.perf_counter() - started)
        await poller.poll("conditional")

        async def median_ms(name: str) -> float:
            times = []
            for _ in range(rounds):
                t = time.perf_counter()
                outcome = await poller.poll(name)
                if outcome is None or outcome.error or outcome.ingested:
                    raise RuntimeError(f"unexpected poll of {name}: {outcome}")
                times.append((time.perf_counter() - t) * 1000)
            return statistics.median(times)

        return {
            "poll_new_items_per_s": new_per_s,
            "poll_unchanged_ms": await median_ms("full"),
            "poll_not_modified_ms": await median_ms("conditional"),
        }
    finally:
        await poller.http.aclose()
        server.stop()
        keys = [k async for k in redis.scan_iter(match=f"{namespace}:*", count=1000)]
        if keys:
            await redis.unlink(*keys)
        await redis.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200, help="items in the feed")
    parser.add_argument("--rounds", type=int, default=50, help="polls of the unchanged feed")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--redis-url", default=os.environ.get("REDALERT_REDIS_URL"))
    args = parser.parse_args()

    document = rss2(items(args.items))
    page = statuses(40)
    result: dict[str, float | int] = {
        "items": args.items,
        "rss_items_per_s": rate(lambda: parse_feed(document, "bench"), args.items),
        "mastodon_statuses_per_s": rate(lambda: mastodon.parse_statuses(page, "bench"), 40),
    }
    with reachable_redis(args.redis_url) as url:
        result.update(asyncio.run(polls(url, args.items, args.rounds)))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"sources ({args.items}-item feed, pages of 40 statuses)")
        print(f"  parse RSS 2.0         {result['rss_items_per_s']:>10,.0f} items/s")
        print(f"  parse Mastodon        {result['mastodon_statuses_per_s']:>10,.0f} statuses/s")
        print(f"  poll, all new         {result['poll_new_items_per_s']:>10,.0f} posts/s")
        print(f"  poll, unchanged (200) {result['poll_unchanged_ms']:>10,.1f} ms")
        print(f"  poll, 304             {result['poll_not_modified_ms']:>10,.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
